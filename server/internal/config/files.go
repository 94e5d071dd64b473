package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"kiln/runtime/files"
	"kiln/server/internal/ratelimit"
)

// FilesConfig configures where uploaded files are stored and the limits of
// uploads, download URLs and cleanup.
type FilesConfig struct {
	// Dir holds files on the local disk (KILN_FILES_DIR, default
	// <data dir>/files) when S3 is not configured.
	Dir string
	// PublicURL is the base URL clients reach this server at, used in the
	// signed URLs of the local-disk backend (KILN_PUBLIC_URL; default the
	// listen address).
	PublicURL string
	// Secret keys the signatures of local-disk URLs (KILN_FILES_SECRET;
	// default a random key kept under the data directory).
	Secret string
	// ImageSizes are the boxes File.url(transform:) may ask for
	// (KILN_IMAGE_SIZES; nil: the runtime's defaults).
	ImageSizes []files.Size
	// S3 is set when KILN_S3_BUCKET is.
	S3 *S3Config
	// MaxSize bounds every upload in bytes (KILN_MAX_UPLOAD_SIZE, default 100MB).
	MaxSize int64
	// MaxMultipart bounds uploadFile requests (KILN_MAX_MULTIPART_SIZE, default 10MB).
	MaxMultipart int64
	// TicketTTL is how long an upload URL is valid (KILN_UPLOAD_URL_TTL, default 15m).
	TicketTTL time.Duration
	// MaxURLExpiry bounds File.url(expiresIn:) (KILN_FILE_URL_MAX_EXPIRY, default 1h).
	MaxURLExpiry time.Duration
	// UploadTTL: unreferenced files idle for longer are removed
	// (KILN_UPLOAD_TTL, default 24h).
	UploadTTL time.Duration
	// JanitorInterval is how often the cleanup runs (KILN_FILES_JANITOR_INTERVAL,
	// default 10m; "off" disables it on this instance).
	JanitorInterval time.Duration
	// PendingQuota bounds the bytes of one user's uploads in progress
	// (KILN_UPLOAD_QUOTA_PENDING, default 200MB); StorageQuota the bytes of
	// one user's files, pending and completed (KILN_STORAGE_QUOTA, default
	// 1GB). Anonymous accounts get AnonPendingQuota
	// (KILN_ANON_UPLOAD_QUOTA_PENDING, default 50MB) and AnonStorageQuota
	// (KILN_ANON_STORAGE_QUOTA, default 100MB) instead. 0 means no quota
	// ("0" or "off").
	PendingQuota, StorageQuota, AnonPendingQuota, AnonStorageQuota int64
	// UploadRates limit upload tickets (createUpload, uploadFile) and,
	// separately, PUTs to the local-disk upload URLs, per client address and
	// per user (KILN_UPLOAD_RATE_PER_IP, default 2/s, KILN_UPLOAD_RATE_IP_BURST,
	// default 60; KILN_UPLOAD_RATE_PER_USER, default 1/s,
	// KILN_UPLOAD_RATE_USER_BURST, default 30; "inf" disables a rate).
	UploadRates ratelimit.Limits
}

// MaxS3Copy is the largest object S3 copies in one request (CopyObject),
// which completing an upload does: KILN_MAX_UPLOAD_SIZE may not exceed it
// with S3.
const MaxS3Copy = 5 << 30

// Default upload quotas and rates.
const (
	DefaultPendingQuota     = 200e6
	DefaultStorageQuota     = 1e9
	DefaultAnonPendingQuota = 50e6
	DefaultAnonStorageQuota = 100e6
	DefaultUploadPerIP      = 2
	DefaultUploadIPBurst    = 60
	DefaultUploadPerUser    = 1
	DefaultUploadUserBurst  = 30
)

// S3Config selects an S3 bucket (AWS or an S3-compatible server).
type S3Config struct {
	Bucket         string // KILN_S3_BUCKET
	Endpoint       string // KILN_S3_ENDPOINT, "" for AWS
	Region         string // KILN_S3_REGION, default us-east-1
	AccessKey      string // KILN_S3_ACCESS_KEY (or the AWS default chain)
	SecretKey      string // KILN_S3_SECRET_KEY
	PathStyle      bool   // KILN_S3_PATH_STYLE=true for most self-hosted servers
	PublicEndpoint string // KILN_S3_PUBLIC_ENDPOINT: base URL put in presigned URLs
}

// parseSize reads 5MB, 512KiB, 1GB or a plain number of bytes.
func parseSize(v string) (int64, bool) {
	units := []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			v, mul = strings.TrimSuffix(v, u.suffix), u.n
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mul {
		return 0, false
	}
	return n * mul, true
}

func filesFromEnv(getenv func(string) string, dataDir string) (FilesConfig, error) {
	c := FilesConfig{
		Dir: getenv("KILN_FILES_DIR"), PublicURL: strings.TrimRight(getenv("KILN_PUBLIC_URL"), "/"), Secret: getenv("KILN_FILES_SECRET"),
		MaxSize: 100e6, MaxMultipart: 10e6, TicketTTL: 15 * time.Minute, MaxURLExpiry: time.Hour,
		UploadTTL: 24 * time.Hour, JanitorInterval: 10 * time.Minute,
		PendingQuota: DefaultPendingQuota, StorageQuota: DefaultStorageQuota,
		AnonPendingQuota: DefaultAnonPendingQuota, AnonStorageQuota: DefaultAnonStorageQuota,
		UploadRates: ratelimit.Limits{PerIP: DefaultUploadPerIP, IPBurst: DefaultUploadIPBurst,
			PerUser: DefaultUploadPerUser, UserBurst: DefaultUploadUserBurst},
	}
	if c.Dir == "" {
		c.Dir = filepath.Join(dataDir, "files")
	}
	var errs []error
	if v := getenv("KILN_IMAGE_SIZES"); v != "" {
		sizes, err := files.ParseSizes(v)
		if err == nil && len(sizes) == 0 {
			err = errors.New("no sizes")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("KILN_IMAGE_SIZES: %w", err))
		}
		c.ImageSizes = sizes
	}
	for _, s := range []struct {
		env string
		dst *int64
	}{{"KILN_MAX_UPLOAD_SIZE", &c.MaxSize}, {"KILN_MAX_MULTIPART_SIZE", &c.MaxMultipart}} {
		if v := getenv(s.env); v != "" {
			n, ok := parseSize(v)
			if !ok {
				errs = append(errs, fmt.Errorf("%s must be a size such as 100MB or 1GiB, got %q", s.env, v))
				continue
			}
			*s.dst = n
		}
	}
	for _, q := range []struct {
		env string
		dst *int64
	}{
		{"KILN_UPLOAD_QUOTA_PENDING", &c.PendingQuota}, {"KILN_STORAGE_QUOTA", &c.StorageQuota},
		{"KILN_ANON_UPLOAD_QUOTA_PENDING", &c.AnonPendingQuota}, {"KILN_ANON_STORAGE_QUOTA", &c.AnonStorageQuota},
	} {
		switch v := getenv(q.env); v {
		case "":
		case "0", "off":
			*q.dst = 0
		default:
			n, ok := parseSize(v)
			if !ok {
				errs = append(errs, fmt.Errorf("%s must be a size such as 200MB or 1GiB, or off, got %q", q.env, v))
				continue
			}
			*q.dst = n
		}
	}
	for _, r := range []struct {
		env string
		dst *rate.Limit
	}{{"KILN_UPLOAD_RATE_PER_IP", &c.UploadRates.PerIP}, {"KILN_UPLOAD_RATE_PER_USER", &c.UploadRates.PerUser}} {
		switch v := getenv(r.env); v {
		case "":
		case "inf":
			*r.dst = rate.Inf
		default:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f > 0) || f > 1e9 {
				errs = append(errs, fmt.Errorf(`%s must be a positive number of uploads per second (or "inf" for no limit), got %q`, r.env, v))
				continue
			}
			*r.dst = rate.Limit(f)
		}
	}
	for _, b := range []struct {
		env string
		dst *int
	}{{"KILN_UPLOAD_RATE_IP_BURST", &c.UploadRates.IPBurst}, {"KILN_UPLOAD_RATE_USER_BURST", &c.UploadRates.UserBurst}} {
		if v := getenv(b.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("%s must be a positive integer, got %q", b.env, v))
				continue
			}
			*b.dst = n
		}
	}
	for _, d := range []struct {
		env string
		dst *time.Duration
		min time.Duration
	}{
		{"KILN_UPLOAD_URL_TTL", &c.TicketTTL, time.Second}, {"KILN_FILE_URL_MAX_EXPIRY", &c.MaxURLExpiry, time.Second},
		{"KILN_UPLOAD_TTL", &c.UploadTTL, 0}, {"KILN_FILES_JANITOR_INTERVAL", &c.JanitorInterval, 10 * time.Millisecond},
	} {
		v := getenv(d.env)
		if v == "" {
			continue
		}
		if v == "off" && d.env == "KILN_FILES_JANITOR_INTERVAL" {
			*d.dst = 0
			continue
		}
		x, err := time.ParseDuration(v)
		if err != nil || x < d.min || x <= 0 && d.min > 0 {
			errs = append(errs, fmt.Errorf("%s must be a duration of at least %s, such as 15m, got %q", d.env, d.min, v))
			continue
		}
		*d.dst = x
	}
	if c.MaxURLExpiry > 7*24*time.Hour {
		errs = append(errs, errors.New("KILN_FILE_URL_MAX_EXPIRY must be at most 168h (the longest S3 presigned URL)"))
	}
	if b := getenv("KILN_S3_BUCKET"); b != "" {
		c.S3 = &S3Config{Bucket: b, Endpoint: getenv("KILN_S3_ENDPOINT"), Region: getenv("KILN_S3_REGION"),
			AccessKey: getenv("KILN_S3_ACCESS_KEY"), SecretKey: getenv("KILN_S3_SECRET_KEY"),
			PublicEndpoint: getenv("KILN_S3_PUBLIC_ENDPOINT")}
		if v := getenv("KILN_S3_PATH_STYLE"); v != "" {
			ps, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("KILN_S3_PATH_STYLE must be true or false, got %q", v))
			}
			c.S3.PathStyle = ps
		}
		if (c.S3.AccessKey == "") != (c.S3.SecretKey == "") {
			errs = append(errs, errors.New("set both KILN_S3_ACCESS_KEY and KILN_S3_SECRET_KEY, or neither (the AWS default credential chain)"))
		}
		if c.MaxSize > MaxS3Copy {
			errs = append(errs, fmt.Errorf("KILN_MAX_UPLOAD_SIZE must be at most 5GiB with S3 (the largest object S3 copies in one request), got %d bytes", c.MaxSize))
		}
	} else if getenv("KILN_S3_ENDPOINT") != "" {
		errs = append(errs, errors.New("KILN_S3_ENDPOINT is set but KILN_S3_BUCKET is not: set the bucket to store files in S3"))
	}
	return c, errors.Join(errs...)
}
