package s3_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"kiln/server/internal/blob"
	"kiln/server/internal/blob/blobtest"
	"kiln/server/internal/blob/s3"
)

// testConfig reads the S3 server from the environment, as printed by
// `.ci/s3.sh start`. Without it the tests skip, unless KILN_REQUIRE_S3=1
// (CI), where they fail.
func testConfig(t *testing.T) s3.Config {
	t.Helper()
	cfg := s3.Config{
		Endpoint:  os.Getenv("KILN_TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("KILN_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("KILN_TEST_S3_SECRET_KEY"),
		Region:    os.Getenv("KILN_TEST_S3_REGION"),
		PathStyle: true,
	}
	if cfg.Endpoint == "" || cfg.AccessKey == "" || cfg.SecretKey == "" {
		const msg = "no S3 server: set KILN_TEST_S3_ENDPOINT, KILN_TEST_S3_ACCESS_KEY and KILN_TEST_S3_SECRET_KEY, e.g. with `eval $(.ci/s3.sh start)`"
		if os.Getenv("KILN_REQUIRE_S3") == "1" {
			t.Fatal(msg + " (KILN_REQUIRE_S3=1)")
		}
		t.Skip(msg)
	}
	return cfg
}

// runID makes bucket names unique per test run (and per process, for
// parallel runs against one server).
var (
	runID   = func() string { b := make([]byte, 4); rand.Read(b); return hex.EncodeToString(b) }()
	buckets atomic.Int64
)

// newStore creates a store on a new, unique bucket, emptied and removed
// when the test ends.
func newStore(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	cfg.Bucket = "kiln-test-" + runID + "-" + strings.ToLower(time.Now().UTC().Format("150405")) + "-" + strconv.FormatInt(buckets.Add(1), 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatalf("s3.New: %v", err)
	}
	t.Cleanup(func() { removeBucket(t, s) })
	return s
}

func removeBucket(t *testing.T, s *s3.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	if err := s.List(ctx, "", func(o blob.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Errorf("cleanup: list: %v", err)
		return
	}
	for _, k := range keys {
		if err := s.Delete(ctx, k); err != nil {
			t.Errorf("cleanup: delete %q: %v", k, err)
		}
	}
	if _, err := s.Client().DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String(s.Bucket())}); err != nil {
		t.Errorf("cleanup: delete bucket %s: %v", s.Bucket(), err)
	}
}

func TestConformance(t *testing.T) {
	cfg := testConfig(t)
	blobtest.Run(t, func(t *testing.T) (blob.Store, *http.Client) {
		return newStore(t, cfg), &http.Client{Timeout: time.Minute}
	})
}

// New on an existing bucket is fine (it is not recreated or emptied).
func TestNewExistingBucket(t *testing.T) {
	cfg := testConfig(t)
	s := newStore(t, cfg)
	ctx := context.Background()
	if err := s.Put(ctx, "k", strings.NewReader("v"), 1, "text/plain"); err != nil {
		t.Fatal(err)
	}
	cfg.Bucket = s.Bucket()
	s2, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatalf("New on an existing bucket: %v", err)
	}
	if _, err := s2.Stat(ctx, "k"); err != nil {
		t.Fatalf("object gone after second New: %v", err)
	}
	// Creating it again directly answers "already owned by you" (or
	// succeeds, as AWS does in us-east-1), which New relies on.
	_, err = s.Client().CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(s.Bucket())})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		t.Errorf("CreateBucket on an existing bucket: %v", err)
	}
}

// The presigned upload's signed headers are what the brief promises.
func TestPresignPutSignedHeaders(t *testing.T) {
	cfg := testConfig(t)
	s := newStore(t, cfg)
	u, err := s.PresignPut(context.Background(), "a/b.png", 1234, "image/png", strings.Repeat("ab", 32), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	signed := strings.Split(urlQuery(t, u.URL, "X-Amz-SignedHeaders"), ";")
	for _, h := range []string{"content-length", "content-type", "host", "x-amz-checksum-sha256"} {
		if !contains(signed, h) {
			t.Errorf("X-Amz-SignedHeaders = %q, missing %s", signed, h)
		}
	}
	if u.Headers["Content-Length"] != "1234" || u.Headers["Content-Type"] != "image/png" || u.Headers["X-Amz-Checksum-Sha256"] == "" {
		t.Errorf("Headers = %v", u.Headers)
	}
	if _, ok := u.Headers["Host"]; ok {
		t.Errorf("Headers include Host: %v", u.Headers)
	}
}

// PublicEndpoint is what presigned URLs point at.
func TestPublicEndpoint(t *testing.T) {
	cfg := testConfig(t)
	s := newStore(t, cfg)
	cfg.Bucket = s.Bucket()
	cfg.PublicEndpoint = "https://files.example.com"
	s2, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	g, err := s2.PresignGet(context.Background(), "x/y", time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://files.example.com/" + s.Bucket() + "/x/y?"; !strings.HasPrefix(g, want) {
		t.Errorf("PresignGet = %q, want prefix %q", g, want)
	}
}

func urlQuery(t *testing.T, raw, name string) string {
	t.Helper()
	i := strings.Index(raw, "?")
	for _, kv := range strings.Split(raw[i+1:], "&") {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return strings.ReplaceAll(v, "%3B", ";")
		}
	}
	t.Fatalf("no %s in %s", name, raw)
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
