package backupstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The environment the S3 settings come from (docs/node.md).
const (
	EnvS3Endpoint      = "BUYTRACKER_S3_ENDPOINT"
	EnvS3Region        = "BUYTRACKER_S3_REGION"
	EnvS3CAFile        = "BUYTRACKER_S3_CA_FILE"
	EnvAccessKeyID     = "AWS_ACCESS_KEY_ID"
	EnvSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
)

const (
	// defaultRegion is S3's own default, which most S3-compatible stores
	// accept whatever their region.
	defaultRegion = "us-east-1"
	// partSize bounds the memory of a streamed upload (one part is
	// buffered) and, with S3's 10,000 parts, a backup's size: 160 GiB.
	partSize = 16 << 20
	// maxCAFile bounds the PEM bundle read from BUYTRACKER_S3_CA_FILE.
	maxCAFile = 1 << 20
	// maxAttempts is how many times a request is tried (minio-go's
	// MaxRetries): a few, so that a blip passes but an unreachable store
	// is reported in seconds.
	maxAttempts = 3
)

// S3Config is how to reach an S3-compatible store. Its String hides the
// credentials; never log the fields themselves.
type S3Config struct {
	// Endpoint is http://HOST:PORT or https://HOST:PORT.
	Endpoint string
	// Region is the store's region (default us-east-1).
	Region string
	// AccessKeyID and SecretAccessKey sign requests; both empty means
	// anonymous requests.
	AccessKeyID, SecretAccessKey string
	// CAFile is a PEM bundle trusted for https, beside the system's roots.
	CAFile string
}

// S3ConfigFromEnv reads the settings from the environment through getenv
// (os.Getenv in the agent).
func S3ConfigFromEnv(getenv func(string) string) S3Config {
	return S3Config{
		Endpoint: getenv(EnvS3Endpoint), Region: getenv(EnvS3Region), CAFile: getenv(EnvS3CAFile),
		AccessKeyID: getenv(EnvAccessKeyID), SecretAccessKey: getenv(EnvSecretAccessKey),
	}
}

// String describes the configuration without its credentials.
func (c S3Config) String() string {
	creds := "anonymous"
	if c.AccessKeyID != "" {
		creds = "with credentials"
	}
	return fmt.Sprintf("S3 at %s (region %q, %s)", c.Endpoint, c.Region, creds)
}

// S3 keeps backups as objects of an S3-compatible store, addressed
// path-style (http://HOST/BUCKET/KEY), which every such store serves.
type S3 struct {
	client   *minio.Core
	endpoint string
}

// NewS3 returns a client for the store cfg names. It sends nothing yet.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("an s3:// location needs %s (http://HOST:PORT or https://HOST:PORT)", EnvS3Endpoint)
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%s %q: want http://HOST:PORT or https://HOST:PORT", EnvS3Endpoint, cfg.Endpoint)
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, fmt.Errorf("set both %s and %s, or neither for anonymous access", EnvAccessKeyID, EnvSecretAccessKey)
	}
	secure := u.Scheme == "https"
	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("S3 transport: %w", err)
	}
	if cfg.CAFile != "" {
		if !secure {
			return nil, fmt.Errorf("%s is set but %s is not https", EnvS3CAFile, EnvS3Endpoint)
		}
		pool, err := loadCAs(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	region := cfg.Region
	if region == "" {
		region = defaultRegion
	}
	client, err := minio.NewCore(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
		Secure: secure, Transport: transport, Region: region,
		BucketLookup: minio.BucketLookupPath, MaxRetries: maxAttempts,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", cfg.Endpoint, err)
	}
	return &S3{client: client, endpoint: cfg.Endpoint}, nil
}

// loadCAs returns the system's roots plus the PEM bundle at path.
func loadCAs(path string) (*x509.CertPool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvS3CAFile, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", EnvS3CAFile, path, err)
	}
	if len(raw) > maxCAFile {
		return nil, fmt.Errorf("%s: %s is larger than %d bytes", EnvS3CAFile, path, maxCAFile)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("%s: no PEM certificate in %s", EnvS3CAFile, path)
	}
	return pool, nil
}

func (s *S3) check(loc Location) error {
	if !loc.IsS3() {
		return fmt.Errorf("%w: %s is not an s3:// location", ErrInvalidLocation, loc)
	}
	return nil
}

// Put streams r into a multipart upload, which the store publishes only
// when it completes; a failed one is aborted.
func (s *S3) Put(ctx context.Context, loc Location, r io.Reader) (int64, error) {
	if err := s.check(loc); err != nil {
		return 0, err
	}
	info, err := s.client.Client.PutObject(ctx, loc.Bucket, loc.Key, r, -1, minio.PutObjectOptions{
		PartSize: partSize, ContentType: "application/octet-stream",
	})
	if err != nil {
		return info.Size, s.classify("put "+loc.String(), err)
	}
	return info.Size, nil
}

// Get starts reading the object; a missing one fails here, not on Read.
func (s *S3) Get(ctx context.Context, loc Location) (io.ReadCloser, error) {
	if err := s.check(loc); err != nil {
		return nil, err
	}
	body, _, _, err := s.client.GetObject(ctx, loc.Bucket, loc.Key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.classify("get "+loc.String(), err)
	}
	return body, nil
}

// Delete removes the object; S3 answers success for an absent key, and an
// absent bucket holds nothing to delete either.
func (s *S3) Delete(ctx context.Context, loc Location) error {
	if err := s.check(loc); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, loc.Bucket, loc.Key, minio.RemoveObjectOptions{})
	if err == nil || errors.Is(s.classify("", err), ErrNotFound) {
		return nil
	}
	return s.classify("delete "+loc.String(), err)
}

// classify describes a failed request, marking it ErrNotFound,
// ErrAccessDenied or ErrUnreachable when the client's error is one of
// those.
func (s *S3) classify(op string, err error) error {
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey" || resp.Code == "NoSuchBucket" || resp.StatusCode == 404:
		return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	case resp.Code == "AccessDenied" || resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch" ||
		resp.StatusCode == 401 || resp.StatusCode == 403:
		return fmt.Errorf("%s: %w: %w", op, ErrAccessDenied, err)
	}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.As(err, &dnsErr) || errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) {
		return fmt.Errorf("%s: %w (%s): %w", op, ErrUnreachable, s.endpoint, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
