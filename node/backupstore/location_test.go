package backupstore

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Location
	}{
		{"/backups/shop/promo/nightly.btbackup", Location{Path: "/backups/shop/promo/nightly.btbackup"}},
		{"s3://backups/shop/promo/nightly.btbackup", Location{Bucket: "backups", Key: "shop/promo/nightly.btbackup"}},
		{"s3://my.bucket-1/k", Location{Bucket: "my.bucket-1", Key: "k"}},
	} {
		got, err := ParseLocation(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("%q prints as %q", tc.in, got.String())
		}
	}
	for _, bad := range []string{
		"", "relative/path", "./x", "/", "/backups/", "/backups/../etc/x", "/a//b",
		"s3://", "s3://bucket", "s3://bucket/", "s3://Bucket/k", "s3://ab/k", "s3://-bucket/k", "s3://bucket-/k",
		"s3://bucket//k", "s3://bucket/a/../k", "s3://bucket/dir/", "s3://bucket/a\nb",
		"http://bucket/k", "/" + strings.Repeat("x", 1020),
	} {
		if got, err := ParseLocation(bad); !errors.Is(err, ErrInvalidLocation) {
			t.Errorf("ParseLocation(%q) = %+v, %v; want ErrInvalidLocation", bad, got, err)
		}
	}
}

func TestManifestIsBesideTheBackup(t *testing.T) {
	for in, want := range map[string]string{
		"/backups/a.btbackup":  "/backups/a.btbackup.manifest.json",
		"s3://bucket/p/a.back": "s3://bucket/p/a.back.manifest.json",
	} {
		loc, err := ParseLocation(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := loc.Manifest().String(); got != want {
			t.Errorf("manifest of %s is %s, want %s", in, got, want)
		}
	}
}
