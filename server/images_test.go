package server

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kiln/server/kilntest"
)

// pngImage is a w x h PNG with a gradient, so resizing has work to do.
func pngImage(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 120, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func get(t *testing.T, u string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// renditionStored reports whether the blob store holds the rendition at
// renditions/<id>/<variant>.
func renditionStored(t *testing.T, fe fileEnv, id, variant string) bool {
	t.Helper()
	key := "renditions/" + id + "/" + variant
	if fe.s3 != nil {
		rc, err := fe.s3.Open(context.Background(), key)
		if err == nil {
			rc.Close()
		}
		return err == nil
	}
	found := false
	_ = filepath.WalkDir(filepath.Join(fe.dataDir, "files"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(filepath.ToSlash(p), id+"/"+variant) {
			found = true
		}
		return nil
	})
	return found
}

// TestImageRenditions: File.url(transform:) on both storage backends and
// both databases. The rendition is made on the first GET, stored beside
// the original and served from there afterwards; only allowed sizes and
// image files have renditions; URLs are only issued to viewers who may see
// the original, and a URL whose signature, file or variant was changed is
// refused.
func TestImageRenditions(t *testing.T) {
	fileBackends(t, []string{"KILN_IMAGE_SIZES=64x64,200x100"}, func(t *testing.T, s *kilntest.Server, fe fileEnv) {
		alice := signUp(t, s, "alice@example.com")
		bob := signUp(t, s, "bob@example.com")
		myProfile(t, s, alice.AccessToken, "alice")
		myProfile(t, s, bob.AccessToken, "bob")
		f := upload(t, s, alice.AccessToken, "photo.png", "image/png", pngImage(t, 300, 150))

		urlOf := func(token, id, transform string) *kilntest.Response {
			return s.DoAs(t, token, `query($id: ID!) { node(id: $id) { ... on File { url(transform: `+transform+`) } } }`, map[string]any{"id": id})
		}
		var out struct{ Node struct{ URL string } }
		r := urlOf(alice.AccessToken, f.ID, `{width: 64, height: 64}`)
		r.Decode(t, &out)
		u := out.Node.URL
		if !strings.Contains(u, "/files/images/"+f.ID+"/64x64-cover.png?") {
			t.Fatalf("rendition url %q", u)
		}
		if renditionStored(t, fe, f.ID, "64x64-cover.png") {
			t.Fatal("a rendition was stored before it was asked for")
		}

		// First GET makes it; the second is served from the store.
		res, first := get(t, u)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/png" {
			t.Fatalf("GET rendition: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), first)
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(first))
		if err != nil || format != "png" || cfg.Width != 64 || cfg.Height != 64 {
			t.Fatalf("rendition is %s %dx%d (%v), want png 64x64", format, cfg.Width, cfg.Height, err)
		}
		if !strings.HasPrefix(res.Header.Get("Cache-Control"), "private, max-age=") {
			t.Errorf("Cache-Control %q", res.Header.Get("Cache-Control"))
		}
		if !renditionStored(t, fe, f.ID, "64x64-cover.png") {
			t.Fatal("the rendition was not kept in the blob store")
		}
		res2, second := get(t, u)
		if res2.StatusCode != http.StatusOK || !bytes.Equal(first, second) {
			t.Fatalf("second GET: %d, %d bytes, want the stored %d", res2.StatusCode, len(second), len(first))
		}
		if res3, _ := get(t, u, "If-None-Match", res.Header.Get("ETag")); res3.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match: %d, want 304", res3.StatusCode)
		}

		// CONTAIN into 200x100 as JPEG.
		r = urlOf(alice.AccessToken, f.ID, `{width: 200, height: 100, fit: CONTAIN, format: JPEG}`)
		r.Decode(t, &out)
		res, body := get(t, out.Node.URL)
		cfg, format, err = image.DecodeConfig(bytes.NewReader(body))
		if res.StatusCode != http.StatusOK || err != nil || format != "jpeg" || cfg.Width != 200 || cfg.Height != 100 {
			t.Fatalf("contain jpeg: %d %s %dx%d %v", res.StatusCode, format, cfg.Width, cfg.Height, err)
		}

		// Refused: a size the server does not allow, a file that is not an image.
		wantFileError(t, urlOf(alice.AccessToken, f.ID, `{width: 256, height: 256}`), "BAD_USER_INPUT", "transform", "UNSUPPORTED_IMAGE_SIZE")
		doc := upload(t, s, alice.AccessToken, "clip.mp4", "video/mp4", randomBytes(1000))
		wantFileError(t, urlOf(alice.AccessToken, doc.ID, `{width: 64, height: 64}`), "BAD_USER_INPUT", "transform", "NOT_AN_IMAGE")

		// Bob may not see alice's unattached file: no node, so no URL.
		if r := urlOf(bob.AccessToken, f.ID, `{width: 64, height: 64}`); len(r.Errors) > 0 || string(r.Data) != `{"node":null}` {
			t.Fatalf("bob asks for a rendition of alice's file: %s %+v", r.Data, r.Errors)
		}

		// A URL changed in any part is refused.
		parsed, _ := url.Parse(u)
		q := parsed.Query()
		tampered := map[string]string{}
		sig := q.Get("sig")
		q.Set("sig", strings.Repeat("0", len(sig)))
		tampered["signature"] = parsed.Scheme + "://" + parsed.Host + parsed.Path + "?" + q.Encode()
		q.Set("sig", sig)
		tampered["variant"] = strings.Replace(u, "64x64-cover.png", "200x100-cover.png", 1)
		tampered["file"] = strings.Replace(u, f.ID, doc.ID, 1)
		q.Set("exp", q.Get("exp")+"0")
		tampered["expiry"] = parsed.Scheme + "://" + parsed.Host + parsed.Path + "?" + q.Encode()
		for what, tu := range tampered {
			if res, body := get(t, tu); res.StatusCode != http.StatusForbidden {
				t.Errorf("changed %s: %d %s, want 403", what, res.StatusCode, body)
			}
		}
	})
}
