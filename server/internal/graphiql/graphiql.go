// Package graphiql serves an offline GraphiQL explorer whose JavaScript and
// CSS are embedded in the binary, so the page works with no internet access.
//
// Assets: assets/graphiql.min.js and assets/graphiql.min.css are copied
// unmodified from the npm package graphiql@3.9.0 (its UMD bundle, which
// already contains the graphql and graphql-ws clients);
// assets/react.production.min.js and assets/react-dom.production.min.js are
// the umd/ builds from react@18.3.1 and react-dom@18.3.1. Their licenses are
// in assets/THIRD_PARTY_LICENSES.txt. index.html, kiln-graphiql.js and
// kiln-graphiql.css are ours. To refresh, outside the repository run
//
//	mkdir -p /tmp/giql && cd /tmp/giql
//	npm pack graphiql@3.9.0 react@18.3.1 react-dom@18.3.1
//	for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
//	cp graphiql-3.9.0/package/graphiql.min.js graphiql-3.9.0/package/graphiql.min.css \
//	   react-18.3.1/package/umd/react.production.min.js \
//	   react-dom-18.3.1/package/umd/react-dom.production.min.js \
//	   <repo>/server/internal/graphiql/assets/
//
// with the new versions, update this comment and THIRD_PARTY_LICENSES.txt,
// and run this package's tests. GraphiQL 4+ no longer ships a UMD bundle, and
// React 19 no longer ships UMD builds, so a move past graphiql 3.x / React 18
// needs a different loading scheme (ES modules) in index.html.
//
// Asset URLs carry a content hash (graphiql/NAME.HASH.EXT), so they are served
// with a one-year immutable Cache-Control; the page itself is never cached.
//
// Mounting: the handler expects paths relative to where it is mounted, so
// mount it at the root of a mux or behind [http.StripPrefix]:
//
//	mux.Handle("/graphiql/", http.StripPrefix("/graphiql", graphiql.Handler("/graphql")))
package graphiql

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

// DefaultEndpoint is the GraphQL endpoint used when Handler is given "".
const DefaultEndpoint = "/graphql"

// assetDir is the sub-path, relative to the mount point, under which the
// assets are served. It must end in "/".
const assetDir = "graphiql/"

//go:embed assets/index.html
var indexHTML string

//go:embed assets/*.js assets/*.css
var assetFS embed.FS

var indexTmpl = template.Must(template.New("index.html").Parse(indexHTML))

type asset struct {
	name   string // hashed file name, e.g. graphiql.min.0123456789ab.js
	ctype  string
	etag   string
	data   []byte
	gzOnce sync.Once
	gz     []byte // gzip of data; nil when it does not help
}

var (
	assetsByURL  map[string]*asset // hashed name -> asset
	assetURLs    map[string]string // original name -> "graphiql/<hashed name>"
	contentTypes = map[string]string{
		".js":  "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8",
	}
)

func init() {
	entries, err := assetFS.ReadDir("assets")
	if err != nil {
		panic("graphiql: reading embedded assets: " + err.Error())
	}
	assetsByURL = make(map[string]*asset, len(entries))
	assetURLs = make(map[string]string, len(entries))
	for _, e := range entries {
		ext := path.Ext(e.Name())
		ctype, ok := contentTypes[ext]
		if !ok {
			continue
		}
		data, err := assetFS.ReadFile("assets/" + e.Name())
		if err != nil {
			panic("graphiql: reading embedded asset: " + err.Error())
		}
		sum := sha256.Sum256(data)
		hash := hex.EncodeToString(sum[:6])
		hashed := strings.TrimSuffix(e.Name(), ext) + "." + hash + ext
		assetsByURL[hashed] = &asset{name: hashed, ctype: ctype, etag: `"` + hash + `"`, data: data}
		assetURLs[e.Name()] = assetDir + hashed
	}
}

// gzipped returns the gzip-compressed body, computed on first use.
func (a *asset) gzipped() []byte {
	a.gzOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if _, err := zw.Write(a.data); err != nil {
			return
		}
		if err := zw.Close(); err != nil {
			return
		}
		if buf.Len() < len(a.data) {
			a.gz = buf.Bytes()
		}
	})
	return a.gz
}

// Handler serves the GraphiQL page at prefix (e.g. "/") and its assets under
// prefix+"graphiql/".
//
// The handler sees request paths relative to its mount point: "/" is the page
// and "/graphiql/NAME.HASH.EXT" are the assets; everything else is 404. When
// mounted behind http.StripPrefix without a trailing slash, a request for the
// bare prefix is redirected to prefix+"/" so the page's relative asset URLs
// resolve. endpoint is the URL (normally an absolute path) of the GraphQL
// endpoint that the page queries; "" means DefaultEndpoint. Subscriptions, if
// any, use the same URL with a ws: or wss: scheme.
func Handler(endpoint string) http.Handler {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	var buf bytes.Buffer
	if err := indexTmpl.Execute(&buf, struct {
		Endpoint string
		Assets   map[string]string
	}{endpoint, assetURLs}); err != nil {
		panic("graphiql: rendering index.html: " + err.Error())
	}
	return &handler{index: buf.Bytes()}
}

type handler struct {
	index []byte
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "":
		if !allowGetHead(w, r) {
			return
		}
		h.redirectToSlash(w, r)
	case p == "/":
		if !allowGetHead(w, r) {
			return
		}
		hdr := w.Header()
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Cache-Control", "no-cache")
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Referrer-Policy", "no-referrer")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.index))
	case strings.HasPrefix(p, "/"+assetDir):
		a := assetsByURL[strings.TrimPrefix(p, "/"+assetDir)]
		if a == nil {
			http.NotFound(w, r)
			return
		}
		if !allowGetHead(w, r) {
			return
		}
		serveAsset(w, r, a)
	default:
		http.NotFound(w, r)
	}
}

// redirectToSlash handles a request for the mount point without its trailing
// slash (possible under http.StripPrefix("/x", ...) for "/x").
func (h *handler) redirectToSlash(w http.ResponseWriter, r *http.Request) {
	target := "/"
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil && u.Path != "" {
		target = u.Path + "/"
	}
	if strings.HasPrefix(target, "//") { // never produce a scheme-relative URL
		target = "/" + strings.TrimLeft(target, "/")
	}
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusMovedPermanently)
}

func allowGetHead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	return false
}

func serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	hdr := w.Header()
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Add("Vary", "Accept-Encoding")
	body, etag := a.data, a.etag
	if acceptsGzip(r) {
		if gz := a.gzipped(); gz != nil {
			body = gz
			etag = `"` + strings.Trim(a.etag, `"`) + `-gz"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			params = strings.ReplaceAll(params, " ", "")
			if q, ok := strings.CutPrefix(params, "q="); ok && strings.Trim(q, "0.") == "" {
				return false
			}
			return true
		}
	}
	return false
}
