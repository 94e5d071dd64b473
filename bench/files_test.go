package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// fileSizes are the object sizes of BenchmarkFiles: a photo-sized file and
// a short video.
var fileSizes = []int{256 << 10, 8 << 20}

// BenchmarkFiles measures upload and download throughput (MB/s, one stream)
// of Kiln's file flow on the local-disk backend and on S3, next to the same
// bytes written and read directly on the same S3 server with aws-sdk-go-v2.
//
//   - kiln-disk, kiln-s3: upload = createUpload + PUT of the bytes to the
//     ticket's url with its headers (sha256-bound) + completeUpload;
//     download = node(id) { url } + GET of the url.
//   - s3-direct: PutObject (with ChecksumSHA256, like the ticket) and
//     GetObject on the same server, no Kiln involved.
//
// S3 needs KILN_TEST_S3_ENDPOINT/ACCESS_KEY/SECRET_KEY (eval "$(.ci/s3.sh start)");
// without them only kiln-disk runs.
func BenchmarkFiles(b *testing.B) {
	endpoint, ak, sk := os.Getenv("KILN_TEST_S3_ENDPOINT"), os.Getenv("KILN_TEST_S3_ACCESS_KEY"), os.Getenv("KILN_TEST_S3_SECRET_KEY")
	bin := kilnBinary(b)
	for _, size := range fileSizes {
		body := make([]byte, size)
		rand.Read(body)
		sum := sha256.Sum256(body)
		label := fmt.Sprintf("%dKiB", size>>10)
		b.Run("kiln-disk/"+label, func(b *testing.B) {
			s := startServer(b, bin, []string{"-addr", "127.0.0.1:0"}, "KILN_DATA_DIR="+b.TempDir(), "KILN_ADMIN_SECRET="+benchAdminSecret,
				"KILN_RATE_PER_IP=inf", "KILN_RATE_PER_USER=inf", "KILN_UPLOAD_RATE_PER_IP=inf", "KILN_UPLOAD_RATE_PER_USER=inf")
			kilnFileRounds(b, s, body, sum[:])
		})
		b.Run("kiln-s3/"+label, func(b *testing.B) {
			if endpoint == "" {
				b.Skip("no S3 server: eval \"$(.ci/s3.sh start)\"")
			}
			s := startServer(b, bin, []string{"-addr", "127.0.0.1:0"}, "KILN_DATA_DIR="+b.TempDir(), "KILN_ADMIN_SECRET="+benchAdminSecret,
				"KILN_RATE_PER_IP=inf", "KILN_RATE_PER_USER=inf", "KILN_UPLOAD_RATE_PER_IP=inf", "KILN_UPLOAD_RATE_PER_USER=inf",
				"KILN_S3_BUCKET="+benchBucket(), "KILN_S3_ENDPOINT="+endpoint, "KILN_S3_ACCESS_KEY="+ak, "KILN_S3_SECRET_KEY="+sk, "KILN_S3_PATH_STYLE=true")
			kilnFileRounds(b, s, body, sum[:])
		})
		b.Run("s3-direct/"+label, func(b *testing.B) {
			if endpoint == "" {
				b.Skip("no S3 server: eval \"$(.ci/s3.sh start)\"")
			}
			directS3Rounds(b, endpoint, ak, sk, body, sum[:])
		})
	}
}

func benchBucket() string {
	x := make([]byte, 4)
	rand.Read(x)
	return "kiln-bench-" + hex.EncodeToString(x)
}

func kilnFileRounds(b *testing.B, s *server, body, sum []byte) {
	client := newClient()
	ctx := context.Background()
	endpoint := s.URL + "/graphql"
	ids := make([]string, 0, 64)
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var tk struct {
				CreateUpload struct {
					FileID, URL, Method string
					Headers             []struct{ Name, Value string }
				}
			}
			if err := do(ctx, client, endpoint, `mutation($s: Int!, $h: String!) { createUpload(input: {filename: "bench.mp4", contentType: "video/mp4", size: $s, sha256: $h}) { fileId url method headers { name value } } }`,
				map[string]any{"s": len(body), "h": hex.EncodeToString(sum)}, &tk); err != nil {
				b.Fatal(err)
			}
			req, _ := http.NewRequest(tk.CreateUpload.Method, tk.CreateUpload.URL, bytes.NewReader(body))
			for _, h := range tk.CreateUpload.Headers {
				if strings.EqualFold(h.Name, "Content-Length") {
					req.ContentLength, _ = strconv.ParseInt(h.Value, 10, 64)
					continue
				}
				req.Header.Set(h.Name, h.Value)
			}
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode/100 != 2 {
				b.Fatalf("PUT: status %d", res.StatusCode)
			}
			if err := do(ctx, client, endpoint, `mutation($id: ID!) { completeUpload(fileId: $id) { id } }`, map[string]any{"id": tk.CreateUpload.FileID}, nil); err != nil {
				b.Fatal(err)
			}
			if len(ids) < cap(ids) {
				ids = append(ids, tk.CreateUpload.FileID)
			}
		}
	})
	b.Run("download", func(b *testing.B) {
		if len(ids) == 0 {
			b.Skip("no uploads")
		}
		b.SetBytes(int64(len(body)))
		i := 0
		for b.Loop() {
			var n struct{ Node struct{ URL string } }
			if err := do(ctx, client, endpoint, `query($id: ID!) { node(id: $id) { ... on File { url } } }`, map[string]any{"id": ids[i%len(ids)]}, &n); err != nil {
				b.Fatal(err)
			}
			i++
			res, err := client.Get(n.Node.URL)
			if err != nil {
				b.Fatal(err)
			}
			got, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || got != int64(len(body)) {
				b.Fatalf("GET: status %d, %d bytes", res.StatusCode, got)
			}
		}
	})
}

func directS3Rounds(b *testing.B, endpoint, ak, sk string, body, sum []byte) {
	ctx := context.Background()
	c := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(ak, sk, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 newClient(),
	})
	bucket := benchBucket()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		b.Fatal(err)
	}
	checksum := base64.StdEncoding.EncodeToString(sum)
	n := 0
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("direct/%d", n)),
				Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("video/mp4"),
				ChecksumSHA256: aws.String(checksum)}); err != nil {
				b.Fatal(err)
			}
			n++
		}
	})
	b.Run("download", func(b *testing.B) {
		if n == 0 {
			b.Skip("no uploads")
		}
		b.SetBytes(int64(len(body)))
		i := 0
		for b.Loop() {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("direct/%d", i%n))})
			if err != nil {
				b.Fatal(err)
			}
			got, _ := io.Copy(io.Discard, out.Body)
			out.Body.Close()
			if got != int64(len(body)) {
				b.Fatalf("GetObject: %d bytes", got)
			}
			i++
		}
	})
}
