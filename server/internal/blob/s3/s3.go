// Package s3 is a [blob.Store] on any S3-compatible service (AWS S3,
// versitygw, MinIO, R2, ...), using aws-sdk-go-v2.
//
// Presigned uploads are SigV4 query-signed PutObject URLs whose signed headers
// include Content-Length and Content-Type and, when a sha256 is given,
// x-amz-checksum-sha256 (which S3 also checks against the body, and keeps:
// Stat reports it). A client must send every header in Upload.Headers.
package s3

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"kiln/server/internal/blob"
)

// Config selects the bucket and how to reach it.
type Config struct {
	// Endpoint is the S3 API base URL, e.g. "http://127.0.0.1:57000"; ""
	// means AWS S3 itself.
	Endpoint string
	// Region defaults to "us-east-1".
	Region string
	// Bucket is created by New when it does not exist yet.
	Bucket string
	// AccessKey and SecretKey are static credentials; when both are empty
	// the SDK's default chain (environment, shared config, instance role...)
	// is used.
	AccessKey string
	SecretKey string
	// PathStyle addresses the bucket as <endpoint>/<bucket>/<key> instead
	// of <bucket>.<host>/<key> (needed for most self-hosted servers).
	PathStyle bool
	// PublicEndpoint, when set, is the base URL put in presigned URLs (and
	// signed for) instead of Endpoint: e.g. a public host or CDN in front of
	// an endpoint the server reaches privately.
	PublicEndpoint string
}

// Store is an S3-backed blob.Store. Create it with New.
type Store struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
}

var _ blob.Store = (*Store)(nil)

// MaxPresignDuration is the longest validity SigV4 presigned URLs allow.
const MaxPresignDuration = 7 * 24 * time.Hour

// New connects to the service and creates the bucket if it is missing.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket configured")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("s3: set both access key and secret key, or neither")
	}
	loadOpts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	if cfg.AccessKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load config: %w", err)
	}
	clientFor := func(endpoint string) *s3.Client {
		return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
			o.UsePathStyle = cfg.PathStyle
			// Checksums only where we ask for them (sha256, below): the
			// default CRC32 needs seekable bodies over plain HTTP, and
			// some S3-compatible servers reject it.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		})
	}
	s := &Store{client: clientFor(cfg.Endpoint), bucket: cfg.Bucket}
	pub := cfg.Endpoint
	if cfg.PublicEndpoint != "" {
		pub = cfg.PublicEndpoint
	}
	s.presign = s3.NewPresignClient(clientFor(pub))
	if err := s.ensureBucket(ctx, cfg.Region); err != nil {
		return nil, err
	}
	return s, nil
}

// Client returns the underlying SDK client (e.g. for tests and admin tasks).
func (s *Store) Client() *s3.Client { return s.client }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

func (s *Store) ensureBucket(ctx context.Context, region string) error {
	_, headErr := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if headErr == nil {
		return nil
	}
	in := &s3.CreateBucketInput{Bucket: &s.bucket}
	if region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(region),
		}
	}
	_, err := s.client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err == nil || errors.As(err, &owned) {
		return nil
	}
	return fmt.Errorf("s3: bucket %q: head: %v; create: %w", s.bucket, headErr, err)
}

// isNotFound reports a missing object (not a missing bucket).
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		case "NoSuchBucket":
			return false
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && (api == nil || api.ErrorCode() != "NoSuchBucket")
}

func notFound(key string, err error) error {
	return fmt.Errorf("%w: %s (%v)", blob.ErrNotFound, key, err)
}

// ------------------------------------------------------------- presign ---

// fixedTimePresigner signs with a chosen time instead of now, so that a URL
// can be made to expire at any instant (also one in the past, for tests).
type fixedTimePresigner struct {
	signer *v4.Signer
	t      time.Time
}

func (p fixedTimePresigner) PresignHTTP(ctx context.Context, credentials aws.Credentials, r *http.Request,
	payloadHash string, service string, region string, _ time.Time, optFns ...func(*v4.SignerOptions),
) (string, http.Header, error) {
	return p.signer.PresignHTTP(ctx, credentials, r, payloadHash, service, region, p.t, optFns...)
}

// presignTiming returns the options that make a URL valid from (about) now
// until expires, and the resulting expiry (never later than expires; at
// most MaxPresignDuration from now). SigV4 validity is X-Amz-Date plus
// X-Amz-Expires (1 s .. 7 days), both in whole seconds.
func presignTiming(expires time.Time) (func(*s3.PresignOptions), time.Time) {
	now := time.Now()
	signAt := now.Truncate(time.Second)
	d := expires.Sub(signAt).Truncate(time.Second)
	if d < time.Second { // already (nearly) expired: sign in the past
		signAt = expires.Add(-time.Second).Truncate(time.Second)
		d = time.Second
	}
	d = min(d, MaxPresignDuration)
	p := fixedTimePresigner{
		signer: v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
		t:      signAt,
	}
	return func(o *s3.PresignOptions) {
		o.Presigner = p
		o.Expires = d
	}, signAt.Add(d)
}

// PresignPut implements blob.Store. A zero-byte upload is bound to the
// sha256 of no bytes (SigV4 does not sign a zero Content-Length).
func (s *Store) PresignPut(ctx context.Context, key string, size int64, contentType, sha256Hex string, expires time.Time) (blob.Upload, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Upload{}, err
	}
	if size < 0 {
		return blob.Upload{}, fmt.Errorf("s3: negative size %d", size)
	}
	if err := blob.ValidateContentType(contentType); err != nil {
		return blob.Upload{}, err
	}
	sha, err := blob.NormalizeSHA256(sha256Hex)
	if err != nil {
		return blob.Upload{}, err
	}
	if size == 0 && sha == "" {
		sha = blob.EmptySHA256
	}
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		ContentLength: aws.Int64(size),
		ContentType:   aws.String(contentType),
	}
	if sha != "" {
		raw, _ := hex.DecodeString(sha)
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(raw))
	}
	timing, expiresAt := presignTiming(expires)
	req, err := s.presign.PresignPutObject(ctx, in, timing)
	if err != nil {
		return blob.Upload{}, fmt.Errorf("s3: presign put %q: %w", key, err)
	}
	h := make(map[string]string, len(req.SignedHeader))
	for k, v := range req.SignedHeader {
		if strings.EqualFold(k, "Host") {
			continue // the client derives it from the URL
		}
		h[http.CanonicalHeaderKey(k)] = strings.Join(v, ",")
	}
	return blob.Upload{URL: req.URL, Method: req.Method, Headers: h, ExpiresAt: expiresAt}, nil
}

// PresignGet implements blob.Store.
func (s *Store) PresignGet(ctx context.Context, key string, expires time.Time) (string, error) {
	if err := blob.ValidateKey(key); err != nil {
		return "", err
	}
	timing, _ := presignTiming(expires)
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}, timing)
	if err != nil {
		return "", fmt.Errorf("s3: presign get %q: %w", key, err)
	}
	return req.URL, nil
}

// --------------------------------------------------------- object calls ---

// Stat implements blob.Store. SHA256 is known for objects uploaded with a
// sha256 checksum (bound presigned uploads, and Put from an io.Seeker).
func (s *Store) Stat(ctx context.Context, key string) (blob.Object, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       &s.bucket,
		Key:          &key,
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		if isNotFound(err) {
			return blob.Object{}, notFound(key, err)
		}
		return blob.Object{}, fmt.Errorf("s3: stat %q: %w", key, err)
	}
	obj := blob.Object{
		Key:         key,
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ModTime:     aws.ToTime(out.LastModified),
	}
	if out.ChecksumType != types.ChecksumTypeComposite {
		obj.SHA256 = sha256Hex(aws.ToString(out.ChecksumSHA256))
	}
	return obj, nil
}

// sha256Hex converts a base64 full-object sha256 checksum to hex ("" if it
// is not one, e.g. a multipart "<b64>-<parts>" composite).
func sha256Hex(b64 string) string {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 32 {
		return ""
	}
	return hex.EncodeToString(raw)
}

var (
	errTooShort = errors.New("s3: reader has fewer bytes than the declared size")
	errTooLong  = errors.New("s3: reader has more bytes than the declared size")
)

// exactReader yields exactly n bytes of r and fails otherwise, before
// handing out the last byte (so the request body is cut short and the
// service stores nothing).
type exactReader struct {
	r io.Reader
	n int64 // bytes still to deliver
}

// atEOF reads ahead one byte: nil at EOF, errTooLong if there is more.
func (e *exactReader) atEOF() error {
	var b [1]byte
	for range 100 {
		m, err := e.r.Read(b[:])
		switch {
		case m > 0:
			return errTooLong
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
	}
	return io.ErrNoProgress
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n == 0 {
		if err := e.atEOF(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	m, err := e.r.Read(p)
	e.n -= int64(m)
	if e.n == 0 {
		// Check for extra bytes before releasing the final ones.
		if perr := e.atEOF(); perr != nil {
			return 0, perr
		}
		return m, io.EOF
	}
	if err == io.EOF {
		return m, fmt.Errorf("%w: %w", errTooShort, io.ErrUnexpectedEOF)
	}
	return m, err
}

// Put implements blob.Store. When r is an io.Seeker (a file, a
// bytes.Reader, gqlgen's graphql.Upload) its remaining length is checked up
// front and a sha256 checksum is sent (and kept by S3); otherwise the body
// streams unsigned, in one request, with its length enforced.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("s3: negative size %d", size)
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	in := &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		ContentLength: aws.Int64(size),
		ContentType:   aws.String(contentType),
	}
	var opts []func(*s3.Options)
	if rs, ok := r.(io.ReadSeeker); ok {
		cur, err := rs.Seek(0, io.SeekCurrent)
		if err != nil {
			return fmt.Errorf("s3: put %q: %w", key, err)
		}
		end, err := rs.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("s3: put %q: %w", key, err)
		}
		if _, err := rs.Seek(cur, io.SeekStart); err != nil {
			return fmt.Errorf("s3: put %q: %w", key, err)
		}
		switch n := end - cur; {
		case n < size:
			return fmt.Errorf("s3: put %q: %w (%d of %d)", key, errTooShort, n, size)
		case n > size:
			return fmt.Errorf("s3: put %q: %w (%d, want %d)", key, errTooLong, n, size)
		}
		in.Body = rs
		in.ChecksumAlgorithm = types.ChecksumAlgorithmSha256
	} else {
		in.Body = &exactReader{r: r, n: size}
		opts = append(opts, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
		})
	}
	if _, err := s.client.PutObject(ctx, in, opts...); err != nil {
		return fmt.Errorf("s3: put %q: %w", key, err)
	}
	return nil
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, notFound(key, err)
		}
		return nil, fmt.Errorf("s3: open %q: %w", key, err)
	}
	return out.Body, nil
}

// Copy implements blob.Store with CopyObject (server-side, up to 5 GiB),
// asking the service for a sha256 checksum of the copy; Stat of dst then
// reports it when the service supports it.
func (s *Store) Copy(ctx context.Context, src, dst string) (blob.Object, error) {
	if err := blob.ValidateKey(src); err != nil {
		return blob.Object{}, err
	}
	if err := blob.ValidateKey(dst); err != nil {
		return blob.Object{}, err
	}
	_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            &s.bucket,
		Key:               &dst,
		CopySource:        aws.String(url.PathEscape(s.bucket) + "/" + escapeKey(src)),
		MetadataDirective: types.MetadataDirectiveCopy,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	if err != nil {
		if isNotFound(err) {
			return blob.Object{}, notFound(src, err)
		}
		return blob.Object{}, fmt.Errorf("s3: copy %q to %q: %w", src, dst, err)
	}
	return s.Stat(ctx, dst)
}

// escapeKey URL-escapes each segment of a (valid) key, for CopySource.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("s3: delete %q: %w", key, err)
	}
	return nil
}

// List implements blob.Store. S3 listings carry no content type or
// checksum, so ContentType and SHA256 are "" (Stat has them).
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Object) error) error {
	if err := blob.ValidatePrefix(prefix); err != nil {
		return err
	}
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket}
	if prefix != "" {
		in.Prefix = &prefix
	}
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3: list %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			if err := fn(blob.Object{
				Key:     aws.ToString(o.Key),
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified),
			}); err != nil {
				return err
			}
		}
	}
	return nil
}
