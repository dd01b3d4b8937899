package pki

import (
	"crypto/tls"
	"fmt"
	"os"

	"github.com/buytracker/buytracker/node/internal/atomicfile"
)

// File names in a member's directory (cert-manager's Secret layout) and in a
// CA's directory.
const (
	CAFile    = "ca.crt"
	CertFile  = "tls.crt"
	KeyFile   = "tls.key"
	CAKeyFile = "ca.key"
)

// namedFile is one file to write.
type namedFile struct {
	name string
	data []byte
}

// WriteDir writes ca.crt, tls.crt, tls.key (cert-manager's Secret layout)
// into dir, creating it 0700, files 0600, each replaced atomically (temp file
// + fsync + rename) so a reader never sees half a file. The material is
// checked first (ca.crt holds CA certificates, tls.key belongs to tls.crt):
// bad input writes nothing. An existing dir keeps its permissions.
//
// The three files are replaced one after another, tls.key before tls.crt: a
// reader between two renames can see a new key with the old certificate.
// Reloader rejects such a pair and picks up the complete set on its next poll.
func WriteDir(dir string, caPEM, certPEM, keyPEM []byte) error {
	if _, err := parseCAPool(caPEM); err != nil {
		return fmt.Errorf("write %s: %s: %w", dir, CAFile, err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("write %s: %s and %s: %w", dir, CertFile, KeyFile, err)
	}
	// ca.crt first: during a CA rotation the new bundle (old and new CA) must
	// be trusted before a certificate of the new CA is presented.
	return writeFiles(dir, namedFile{CAFile, caPEM}, namedFile{KeyFile, keyPEM}, namedFile{CertFile, certPEM})
}

// WriteCADir writes a CA's ca.crt and ca.key into dir the same way as
// WriteDir, after checking that the key belongs to the certificate.
func WriteCADir(dir string, certPEM, keyPEM []byte) error {
	if _, _, err := ParseCA(certPEM, keyPEM); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	return writeFiles(dir, namedFile{CAKeyFile, keyPEM}, namedFile{CAFile, certPEM})
}

func writeFiles(dir string, files ...namedFile) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", dir, err)
	}
	for _, f := range files {
		if err := atomicfile.Write(dir, f.name, f.data); err != nil {
			return err
		}
	}
	return atomicfile.SyncDir(dir)
}
