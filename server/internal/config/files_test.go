package config

import (
	"strings"
	"testing"

	"golang.org/x/time/rate"
)

func envOf(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// TestUploadQuotaAndRateSettings checks the defaults, sizes, "off"/"0" and
// "inf", and the refusal of bad values (each named in the error).
func TestUploadQuotaAndRateSettings(t *testing.T) {
	c, err := filesFromEnv(envOf(nil), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.PendingQuota != 200e6 || c.StorageQuota != 1e9 || c.AnonPendingQuota != 50e6 || c.AnonStorageQuota != 100e6 {
		t.Errorf("default quotas: %d %d %d %d", c.PendingQuota, c.StorageQuota, c.AnonPendingQuota, c.AnonStorageQuota)
	}
	if r := c.UploadRates; r.PerIP != 2 || r.IPBurst != 60 || r.PerUser != 1 || r.UserBurst != 30 {
		t.Errorf("default upload rates: %+v", r)
	}

	c, err = filesFromEnv(envOf(map[string]string{
		"KILN_UPLOAD_QUOTA_PENDING": "1GiB", "KILN_STORAGE_QUOTA": "off", "KILN_ANON_UPLOAD_QUOTA_PENDING": "0",
		"KILN_ANON_STORAGE_QUOTA": "5MB", "KILN_UPLOAD_RATE_PER_IP": "inf", "KILN_UPLOAD_RATE_PER_USER": "0.5",
		"KILN_UPLOAD_RATE_IP_BURST": "7", "KILN_UPLOAD_RATE_USER_BURST": "3",
	}), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.PendingQuota != 1<<30 || c.StorageQuota != 0 || c.AnonPendingQuota != 0 || c.AnonStorageQuota != 5e6 {
		t.Errorf("quotas: %d %d %d %d", c.PendingQuota, c.StorageQuota, c.AnonPendingQuota, c.AnonStorageQuota)
	}
	if r := c.UploadRates; r.PerIP != rate.Inf || r.IPBurst != 7 || r.PerUser != 0.5 || r.UserBurst != 3 {
		t.Errorf("upload rates: %+v", r)
	}

	bad := map[string]string{
		"KILN_UPLOAD_QUOTA_PENDING": "lots", "KILN_STORAGE_QUOTA": "-1", "KILN_ANON_UPLOAD_QUOTA_PENDING": "1TB",
		"KILN_ANON_STORAGE_QUOTA": "1.5GB", "KILN_UPLOAD_RATE_PER_IP": "0", "KILN_UPLOAD_RATE_PER_USER": "NaN",
		"KILN_UPLOAD_RATE_IP_BURST": "0", "KILN_UPLOAD_RATE_USER_BURST": "x",
	}
	_, err = filesFromEnv(envOf(bad), t.TempDir())
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for k := range bad {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("the error does not name %s:\n%v", k, err)
		}
	}
}

// TestMaxUploadSizeWithS3: completing an upload copies it with one S3
// request, so S3 caps KILN_MAX_UPLOAD_SIZE at 5GiB.
func TestMaxUploadSizeWithS3(t *testing.T) {
	env := map[string]string{"KILN_S3_BUCKET": "b", "KILN_MAX_UPLOAD_SIZE": "6GiB"}
	if _, err := filesFromEnv(envOf(env), t.TempDir()); err == nil || !strings.Contains(err.Error(), "KILN_MAX_UPLOAD_SIZE") {
		t.Fatalf("6GiB with S3: %v", err)
	}
	env["KILN_MAX_UPLOAD_SIZE"] = "5GiB"
	if _, err := filesFromEnv(envOf(env), t.TempDir()); err != nil {
		t.Fatalf("5GiB with S3: %v", err)
	}
	delete(env, "KILN_S3_BUCKET")
	env["KILN_MAX_UPLOAD_SIZE"] = "6GiB"
	if _, err := filesFromEnv(envOf(env), t.TempDir()); err != nil {
		t.Fatalf("6GiB on disk: %v", err)
	}
}
