package graphiql

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// do issues a request with the default transport's automatic gzip disabled,
// so that tests see exactly what the handler sent.
func do(t *testing.T, method, u string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{
		Transport: &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

var refRE = regexp.MustCompile(`<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"`)

// assetRefs returns the asset URLs referenced by the page, resolved against
// pageURL; inline data: URLs are skipped.
func assetRefs(t *testing.T, pageURL string, html []byte) []string {
	t.Helper()
	base, err := url.Parse(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range refRE.FindAllSubmatch(html, -1) {
		ref, err := url.Parse(string(m[1]))
		if err != nil {
			t.Fatalf("bad asset URL %q: %v", m[1], err)
		}
		if ref.Scheme == "data" {
			continue // inline (the empty favicon); no request is made
		}
		if ref.IsAbs() || strings.HasPrefix(ref.Path, "/") {
			t.Errorf("asset URL %q is not relative to the mount point", m[1])
		}
		out = append(out, base.ResolveReference(ref).String())
	}
	return out
}

func TestIndex(t *testing.T) {
	srv := httptest.NewServer(Handler("/graphql"))
	defer srv.Close()

	resp, body := do(t, http.MethodGet, srv.URL+"/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache", cc)
	}
	for _, want := range []string{
		`data-endpoint="/graphql"`,
		`<script src="graphiql/react.production.min.`,
		`<script src="graphiql/react-dom.production.min.`,
		`<script src="graphiql/graphiql.min.`,
		`<script src="graphiql/kiln-graphiql.`,
		`<link rel="stylesheet" href="graphiql/graphiql.min.`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	// React must load before ReactDOM, both before GraphiQL, and the boot
	// script last.
	order := []string{"react.production", "react-dom.production", "graphiql.min.", "kiln-graphiql."}
	last := -1
	for _, s := range order {
		i := bytes.Index(body, []byte(`<script src="graphiql/`+s))
		if i <= last {
			t.Errorf("script %s out of order", s)
		}
		last = i
	}

	resp, body = do(t, http.MethodHead, srv.URL+"/", nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD / = %d with %d body bytes, want 200 and none", resp.StatusCode, len(body))
	}
}

func TestIndexMethodNotAllowed(t *testing.T) {
	srv := httptest.NewServer(Handler(""))
	defer srv.Close()
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		resp, _ := do(t, m, srv.URL+"/", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s / = %d, want 405", m, resp.StatusCode)
		}
		if allow := resp.Header.Get("Allow"); allow != "GET, HEAD" {
			t.Errorf("%s / Allow = %q", m, allow)
		}
	}
}

func TestDefaultEndpoint(t *testing.T) {
	srv := httptest.NewServer(Handler(""))
	defer srv.Close()
	_, body := do(t, http.MethodGet, srv.URL+"/", nil)
	if !bytes.Contains(body, []byte(`data-endpoint="/graphql"`)) {
		t.Errorf("default endpoint not /graphql")
	}
}

func TestEndpointEscaped(t *testing.T) {
	evil := `/q"><script>alert(1)</script>`
	srv := httptest.NewServer(Handler(evil))
	defer srv.Close()
	_, body := do(t, http.MethodGet, srv.URL+"/", nil)
	if bytes.Contains(body, []byte("<script>alert(1)")) {
		t.Fatalf("endpoint not escaped:\n%s", body)
	}
	if !bytes.Contains(body, []byte(`data-endpoint="/q&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`)) {
		t.Errorf("escaped endpoint missing:\n%s", body)
	}
}

func TestAssets(t *testing.T) {
	srv := httptest.NewServer(Handler("/graphql"))
	defer srv.Close()
	_, html := do(t, http.MethodGet, srv.URL+"/", nil)
	refs := assetRefs(t, srv.URL+"/", html)
	if len(refs) != 6 {
		t.Fatalf("found %d asset references, want 6: %v", len(refs), refs)
	}
	minSize := map[string]int{
		"graphiql.min.js":             500_000,
		"graphiql.min.css":            100_000,
		"react.production.min.js":     5_000,
		"react-dom.production.min.js": 100_000,
		"kiln-graphiql.js":            500,
		"kiln-graphiql.css":           20,
	}
	for _, ref := range refs {
		resp, body := do(t, http.MethodGet, ref, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", ref, resp.StatusCode)
			continue
		}
		name := path2name(ref)
		want := "text/javascript; charset=utf-8"
		if strings.HasSuffix(name, ".css") {
			want = "text/css; charset=utf-8"
		}
		if ct := resp.Header.Get("Content-Type"); ct != want {
			t.Errorf("%s: Content-Type = %q, want %q", ref, ct, want)
		}
		if ce := resp.Header.Get("Content-Encoding"); ce != "" {
			t.Errorf("%s: Content-Encoding = %q without Accept-Encoding", ref, ce)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") || !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("%s: Cache-Control = %q", ref, cc)
		}
		min, ok := minSize[name]
		if !ok {
			t.Errorf("%s: unexpected asset %q", ref, name)
		} else if len(body) < min {
			t.Errorf("%s: %d bytes, want at least %d", ref, len(body), min)
		}
		orig, err := assetFS.ReadFile("assets/" + name)
		if err != nil || !bytes.Equal(orig, body) {
			t.Errorf("%s: body differs from embedded assets/%s (%v)", ref, name, err)
		}

		// Conditional request.
		etag := resp.Header.Get("ETag")
		resp, _ = do(t, http.MethodGet, ref, map[string]string{"If-None-Match": etag})
		if etag == "" || resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s: If-None-Match %q = %d, want 304", ref, etag, resp.StatusCode)
		}

		// Compressed variant.
		resp, gz := do(t, http.MethodGet, ref, map[string]string{"Accept-Encoding": "gzip, deflate"})
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatalf("%s: %v", ref, err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(plain, orig) {
				t.Errorf("%s: gzip body does not decode to the asset (%v)", ref, err)
			}
			if resp.Header.Get("ETag") == etag {
				t.Errorf("%s: gzip and identity share ETag %s", ref, etag)
			}
		} else if len(orig) > 10_000 {
			t.Errorf("%s: large asset not gzipped", ref)
		}
		if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("%s: Vary = %q", ref, resp.Header.Get("Vary"))
		}
	}
}

// path2name maps ".../graphiql/NAME.HASH.EXT" back to "NAME.EXT".
func path2name(u string) string {
	base := u[strings.LastIndex(u, "/")+1:]
	ext := base[strings.LastIndex(base, "."):]
	stem := strings.TrimSuffix(base, ext)
	stem = stem[:strings.LastIndex(stem, ".")]
	return stem + ext
}

func TestNotFound(t *testing.T) {
	srv := httptest.NewServer(Handler("/graphql"))
	defer srv.Close()
	for _, p := range []string{
		"/graphiql/nope.js",
		"/graphiql/graphiql.min.js", // unhashed name
		"/graphiql/",
		"/graphiql/index.html",
		"/graphiql/THIRD_PARTY_LICENSES.txt",
		"/other",
		"/graphql",
	} {
		resp, _ := do(t, http.MethodGet, srv.URL+p, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestAssetMethodNotAllowed(t *testing.T) {
	srv := httptest.NewServer(Handler("/graphql"))
	defer srv.Close()
	for _, u := range assetURLs {
		resp, _ := do(t, http.MethodPost, srv.URL+"/"+u, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /%s = %d, want 405", u, resp.StatusCode)
		}
	}
}

func TestMountedUnderPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/admin/explorer/", http.StripPrefix("/admin/explorer", Handler("/api/graphql")))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	page := srv.URL + "/admin/explorer/"
	resp, html := do(t, http.MethodGet, page, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", page, resp.StatusCode)
	}
	if !bytes.Contains(html, []byte(`data-endpoint="/api/graphql"`)) {
		t.Errorf("endpoint missing")
	}
	for _, ref := range assetRefs(t, page, html) {
		if !strings.Contains(ref, "/admin/explorer/graphiql/") {
			t.Errorf("asset %s not under the mount prefix", ref)
		}
		if resp, _ := do(t, http.MethodGet, ref, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", ref, resp.StatusCode)
		}
	}
}

func TestRedirectBarePrefix(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/explorer", Handler("/graphql")))
	defer srv.Close()
	resp, _ := do(t, http.MethodGet, srv.URL+"/explorer?x=1", nil)
	if resp.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("GET /explorer = %d, want 301", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "/explorer/?x=1" {
		t.Errorf("Location = %q, want /explorer/?x=1", loc)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for in, want := range map[string]bool{
		"":                  false,
		"gzip":              true,
		"br, gzip;q=0.8":    true,
		"deflate":           false,
		"gzip;q=0":          false,
		"gzip; q=0.000":     false,
		"GZIP":              true,
		"identity, x-gzip2": false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if in != "" {
			r.Header.Set("Accept-Encoding", in)
		}
		if got := acceptsGzip(r); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", in, got, want)
		}
	}
}
