package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// photoWidth x photoHeight is a 12-megapixel phone photo, portrait.
	photoWidth, photoHeight = 3024, 4032
	photoQuality            = 90
	// renditionTransform is the rendition asked for: a 256x256 thumbnail,
	// cropped to fill the box, as JPEG.
	renditionTransform = `{width: 256, height: 256, fit: COVER, format: JPEG}`
	renditionSide      = 256
)

// BenchmarkImageRendition measures image renditions (File.url(transform:))
// of a phone-photo-sized JPEG (3024x4032, quality 90, generated: gradients,
// shapes and noise) uploaded by a signed-in user, on the local-disk backend
// and on S3:
//
//   - first: per operation, the URL of a rendition not made yet
//     (node(id) { ... on File { url(transform:) } } as the uploader, whose
//     file is not attached to anything) and a GET of it, which makes the
//     rendition (decode, resize, encode) and stores it. Each operation is a
//     different file, uploaded beforehand (untimed): a file has only 20
//     variants (5 sizes x 2 fits x 2 formats), and the one measured is
//     256x256 COVER JPEG.
//   - cached: a GET of the same URL, after one untimed first GET, so the
//     rendition is read from the blob store.
//
// Each reports ms/op and the size of the rendition (rendition-bytes); the
// first answer of each is checked to be 200 image/jpeg, decodable, at
// 256x256 (untimed).
//
// S3 needs KILN_TEST_S3_ENDPOINT/ACCESS_KEY/SECRET_KEY (eval "$(.ci/s3.sh start)");
// without them only disk runs.
func BenchmarkImageRendition(b *testing.B) {
	endpoint, ak, sk := os.Getenv("KILN_TEST_S3_ENDPOINT"), os.Getenv("KILN_TEST_S3_ACCESS_KEY"), os.Getenv("KILN_TEST_S3_SECRET_KEY")
	bin := kilnBinary(b)
	photo := phonePhoto(b)
	b.Logf("original: %dx%d JPEG, quality %d, %d bytes (%.1f MB)", photoWidth, photoHeight, photoQuality, len(photo), float64(len(photo))/1e6)
	// Rate limits and quotas off: this measures renditions, and the
	// benchmark's one user uploads far more than any quota or rate allows.
	env := func(b *testing.B) []string {
		return []string{"KILN_DATA_DIR=" + b.TempDir(), "KILN_LOG_LEVEL=info",
			"KILN_RATE_PER_IP=inf", "KILN_RATE_PER_USER=inf", "KILN_UPLOAD_RATE_PER_IP=inf", "KILN_UPLOAD_RATE_PER_USER=inf",
			"KILN_UPLOAD_QUOTA_PENDING=off", "KILN_STORAGE_QUOTA=off"}
	}
	b.Run("disk", func(b *testing.B) {
		s := startServer(b, bin, []string{"-addr", "127.0.0.1:0"}, env(b)...)
		renditionRounds(b, s, photo)
	})
	b.Run("s3", func(b *testing.B) {
		if endpoint == "" {
			b.Skip("no S3 server: eval \"$(.ci/s3.sh start)\"")
		}
		s := startServer(b, bin, []string{"-addr", "127.0.0.1:0"}, append(env(b),
			"KILN_S3_BUCKET="+benchBucket(), "KILN_S3_ENDPOINT="+endpoint, "KILN_S3_ACCESS_KEY="+ak, "KILN_S3_SECRET_KEY="+sk, "KILN_S3_PATH_STYLE=true")...)
		renditionRounds(b, s, photo)
	})
}

// renditionRounds runs first and cached on the server s.
func renditionRounds(b *testing.B, s *server, photo []byte) {
	client := newClient()
	endpoint := s.URL + "/graphql"
	user := signUpUser(b, client, endpoint, "photographer@example.com")
	uploads := 0 // makes every upload's bytes distinct
	upload := func(b *testing.B, token string) string {
		uploads++
		return uploadPhoto(b, client, endpoint, token, photo, uploads)
	}

	b.Run("first", func(b *testing.B) {
		b.StopTimer()
		// A fresh access token per round (they live 15 minutes).
		token := user.renew(b, client, endpoint)
		ids := make([]string, b.N)
		for i := range ids {
			ids[i] = upload(b, token)
		}
		size := 0
		b.ResetTimer()
		b.StartTimer()
		for i := 0; i < b.N; i++ {
			body := getRendition(b, client, renditionURL(b, client, endpoint, token, ids[i]))
			if i == 0 {
				b.StopTimer()
				checkRendition(b, body)
				b.StartTimer()
			}
			size = len(body)
		}
		b.StopTimer()
		reportRendition(b, size)
	})
	var cachedID string
	b.Run("cached", func(b *testing.B) {
		b.StopTimer()
		token := user.renew(b, client, endpoint)
		if cachedID == "" {
			cachedID = upload(b, token)
		}
		// A fresh URL per round (they live 15 minutes); its first GET, in
		// the first round, makes the rendition.
		u := renditionURL(b, client, endpoint, token, cachedID)
		body := getRendition(b, client, u)
		checkRendition(b, body)
		b.ResetTimer()
		b.StartTimer()
		for i := 0; i < b.N; i++ {
			if got := getRendition(b, client, u); len(got) != len(body) {
				b.Fatalf("GET %s: %d bytes, then %d", u, len(body), len(got))
			}
		}
		b.StopTimer()
		reportRendition(b, len(body))
	})
}

func reportRendition(b *testing.B, size int) {
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	b.ReportMetric(float64(size), "rendition-bytes")
}

// phonePhoto is a photoWidth x photoHeight JPEG at photoQuality with some
// detail, so that it decodes, resizes and compresses like a photo: smooth
// gradients, soft-edged discs of colour and per-pixel sensor-like noise.
// The content is deterministic.
func phonePhoto(b *testing.B) []byte {
	b.Helper()
	r := rand.New(rand.NewPCG(3024, 4032))
	type disc struct {
		x, y, rad float64
		c         [3]float64
	}
	discs := make([]disc, 40)
	for i := range discs {
		discs[i] = disc{x: r.Float64() * photoWidth, y: r.Float64() * photoHeight, rad: 100 + r.Float64()*600,
			c: [3]float64{r.Float64() * 255, r.Float64() * 255, r.Float64() * 255}}
	}
	img := image.NewRGBA(image.Rect(0, 0, photoWidth, photoHeight))
	var across []disc // the discs that cross row y
	for y := range photoHeight {
		fy := float64(y) / photoHeight
		row := img.Pix[y*img.Stride:]
		across = across[:0]
		for _, d := range discs {
			if dy := float64(y) - d.y; dy*dy < d.rad*d.rad {
				across = append(across, d)
			}
		}
		for x := range photoWidth {
			fx := float64(x) / photoWidth
			// Sky-to-ground gradient with a horizontal tint.
			c := [3]float64{60 + 120*fy + 40*fx, 110 + 60*(1-fy), 200 - 150*fy + 20*fx}
			for _, d := range across {
				dx, dy := float64(x)-d.x, float64(y)-d.y
				if dist2 := dx*dx + dy*dy; dist2 < d.rad*d.rad {
					// Blend towards the disc's colour, softly at its edge.
					a := 0.6 * (1 - dist2/(d.rad*d.rad))
					for k := range c {
						c[k] += a * (d.c[k] - c[k])
					}
				}
			}
			n := r.Uint64()
			p := row[4*x : 4*x+4 : 4*x+4]
			for k := range 3 {
				v := c[k] + float64(int(n>>(8*k)&0x1f)-16) // noise in [-16, 15]
				p[k] = uint8(min(max(v, 0), 255))
			}
			p[3] = 255
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: photoQuality}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// uploadPhoto uploads photo as the user of token (createUpload, PUT to the
// ticket's url with its headers, completeUpload) and returns the file id.
// A JPEG comment holding n makes the bytes of every upload distinct.
func uploadPhoto(b *testing.B, client *http.Client, endpoint, token string, photo []byte, n int) string {
	b.Helper()
	comment := fmt.Sprintf("kiln bench upload %d", n)
	body := make([]byte, 0, len(photo)+4+len(comment))
	body = append(body, photo[:2]...) // SOI
	body = append(body, 0xFF, 0xFE, byte((len(comment)+2)>>8), byte(len(comment)+2))
	body = append(body, comment...)
	body = append(body, photo[2:]...)
	sum := sha256.Sum256(body)
	ctx := context.Background()
	var tk struct {
		CreateUpload struct {
			FileID, URL, Method string
			Headers             []struct{ Name, Value string }
		}
	}
	if err := doAs(ctx, client, endpoint, token, `mutation($s: Int!, $h: String!) { createUpload(input: {filename: "photo.jpg", contentType: "image/jpeg", size: $s, sha256: $h}) { fileId url method headers { name value } } }`,
		map[string]any{"s": len(body), "h": hex.EncodeToString(sum[:])}, &tk); err != nil {
		b.Fatalf("createUpload: %v", err)
	}
	req, err := http.NewRequest(tk.CreateUpload.Method, tk.CreateUpload.URL, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
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
	if err := doAs(ctx, client, endpoint, token, `mutation($id: ID!) { completeUpload(fileId: $id) { id } }`, map[string]any{"id": tk.CreateUpload.FileID}, nil); err != nil {
		b.Fatalf("completeUpload: %v", err)
	}
	return tk.CreateUpload.FileID
}

// renditionURL asks, as the user of token, for the URL of the
// renditionTransform rendition of the file id.
func renditionURL(b *testing.B, client *http.Client, endpoint, token, id string) string {
	b.Helper()
	var n struct{ Node *struct{ URL string } }
	if err := doAs(context.Background(), client, endpoint, token, `query($id: ID!) { node(id: $id) { ... on File { url(transform: `+renditionTransform+`) } } }`,
		map[string]any{"id": id}, &n); err != nil {
		b.Fatalf("url(transform:) of file %s: %v", id, err)
	}
	if n.Node == nil || n.Node.URL == "" {
		b.Fatalf("url(transform:) of file %s: no node or no url", id)
	}
	return n.Node.URL
}

// getRendition GETs a rendition URL and returns its body; anything but a
// 200 image/jpeg fails b.
func getRendition(b *testing.B, client *http.Client, u string) []byte {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		b.Fatal(err)
	}
	res, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/jpeg" {
		b.Fatalf("GET %s: status %d, Content-Type %q, read error %v: %.300s", u, res.StatusCode, res.Header.Get("Content-Type"), err, body)
	}
	return body
}

// checkRendition fails b unless body is a JPEG of renditionSide x
// renditionSide that decodes.
func checkRendition(b *testing.B, body []byte) {
	b.Helper()
	img, err := jpeg.Decode(bytes.NewReader(body))
	if err != nil {
		b.Fatalf("the rendition does not decode as JPEG: %v", err)
	}
	if got := img.Bounds().Size(); got.X != renditionSide || got.Y != renditionSide {
		b.Fatalf("the rendition is %dx%d, want %dx%d", got.X, got.Y, renditionSide, renditionSide)
	}
}
