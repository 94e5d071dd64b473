package files

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/disintegration/imaging"
	"github.com/google/uuid"
	_ "golang.org/x/image/webp" // decode WebP originals
	"golang.org/x/sync/singleflight"

	"kiln/runtime/store"
	"kiln/runtime/store/file"
)

// Image renditions (File.url(transform:)): a resized copy of an image
// file, made with a pure-Go library on the first request for it and kept
// in the blob store beside the original (renditions/<file id>/<variant>),
// so later requests, from any instance, are one read. Only the sizes the
// server allows (Images.Sizes) are made, so nobody can fill the store
// with arbitrary sizes; a file has at most len(Sizes) x 2 fits x 2
// formats renditions, removed with it.
//
// The URL that File.url(transform:) returns is a capability like a
// presigned download URL: signed (HMAC-SHA256 over the file, the variant
// and the expiry) and short-lived, and only issued to viewers who may see
// the original. The server serves it with ImageHandler.

// Fit is how an image is fitted into the requested box (GraphQL ImageFit).
type Fit string

// Fits.
const (
	// FitCover fills the box and crops what overflows (centre).
	FitCover Fit = "COVER"
	// FitContain fits the whole image inside the box, keeping its aspect
	// ratio; one side may be smaller than asked.
	FitContain Fit = "CONTAIN"
)

// ImageFormat is the encoding of a rendition (GraphQL ImageFormat).
type ImageFormat string

// Formats. WebP is read but not written: no pure-Go encoder is well kept.
const (
	FormatJPEG ImageFormat = "JPEG"
	FormatPNG  ImageFormat = "PNG"
)

// Transform asks for a rendition of an image file (GraphQL
// ImageTransform). Fit defaults to COVER; Format to PNG for PNG
// originals and JPEG for the others.
type Transform struct {
	Width  int          `json:"width"`
	Height int          `json:"height"`
	Fit    *Fit         `json:"fit,omitempty"`
	Format *ImageFormat `json:"format,omitempty"`
}

// Size is an allowed rendition box, in pixels.
type Size struct{ Width, Height int }

func (s Size) String() string { return strconv.Itoa(s.Width) + "x" + strconv.Itoa(s.Height) }

// ParseSizes reads a comma-separated list of WIDTHxHEIGHT boxes, such as
// "64x64,256x256,1024x768".
func ParseSizes(v string) ([]Size, error) {
	var out []Size
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		w, h, ok := strings.Cut(part, "x")
		wi, err1 := strconv.Atoi(w)
		hi, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || wi < 1 || hi < 1 || wi > 8192 || hi > 8192 {
			return nil, fmt.Errorf("image size %q: want WIDTHxHEIGHT with each side 1 to 8192, such as 256x256", part)
		}
		out = append(out, Size{wi, hi})
	}
	return out, nil
}

// DefaultImageSizes are the boxes allowed when Images.Sizes is empty.
var DefaultImageSizes = []Size{{64, 64}, {128, 128}, {256, 256}, {512, 512}, {1024, 1024}}

// Images configures renditions.
type Images struct {
	// Sizes are the allowed boxes (nil: DefaultImageSizes).
	Sizes []Size
	// Secret keys the HMAC of rendition URLs; instances behind one load
	// balancer share it. Empty: File.url(transform:) is refused.
	Secret []byte
	// BaseURL is the server's public URL; rendition URLs are
	// BaseURL + ImagePath + "<file id>/<variant>?exp=...&sig=...".
	BaseURL string
	// MaxPixels bounds the originals decoded (width x height; 0: 40
	// million), so a small file that claims a huge image cannot exhaust
	// memory.
	MaxPixels int64
	// Concurrent bounds the renditions made at once on this instance (0:
	// 2); decoding holds the whole image in memory.
	Concurrent int
}

// ImagePath is where ImageHandler is mounted.
const ImagePath = "/files/images/"

// renditionPrefix holds renditions, by file id.
const renditionPrefix = "renditions/"

// Reasons for refused transforms.
const (
	ReasonNotAnImage = "NOT_AN_IMAGE"
	ReasonImageSize  = "UNSUPPORTED_IMAGE_SIZE"
)

// decodable are the originals renditions are made of.
var decodable = []string{"image/jpeg", "image/png", "image/gif", "image/webp"}

func (s *Service) sizes() []Size {
	if len(s.Images.Sizes) > 0 {
		return s.Images.Sizes
	}
	return DefaultImageSizes
}

// variant is the canonical name of a rendition: 256x256-cover.jpg.
type variant struct {
	Size
	fit    Fit
	format ImageFormat
}

func (v variant) String() string {
	ext := "jpg"
	if v.format == FormatPNG {
		ext = "png"
	}
	return v.Size.String() + "-" + strings.ToLower(string(v.fit)) + "." + ext
}

func parseVariant(name string) (variant, bool) {
	box, rest, ok := strings.Cut(name, "-")
	fit, ext, ok2 := strings.Cut(rest, ".")
	sizes, err := ParseSizes(box)
	if !ok || !ok2 || err != nil || len(sizes) != 1 {
		return variant{}, false
	}
	v := variant{Size: sizes[0], fit: Fit(strings.ToUpper(fit))}
	switch ext {
	case "jpg":
		v.format = FormatJPEG
	case "png":
		v.format = FormatPNG
	default:
		return variant{}, false
	}
	if v.fit != FitCover && v.fit != FitContain || v.String() != name {
		return variant{}, false
	}
	return v, true
}

// checkTransform validates a transform of f against the allowed sizes.
func (s *Service) checkTransform(f *store.File, t Transform) (variant, error) {
	mt, _ := mediaType(f.ContentType)
	if !slices.Contains(decodable, mt) {
		return variant{}, inputError("transform", ReasonNotAnImage, "file %s is %s: only %s images have renditions", f.ID, f.ContentType, strings.Join(decodable, ", "))
	}
	v := variant{Size: Size{t.Width, t.Height}, fit: FitCover, format: FormatJPEG}
	if mt == "image/png" {
		v.format = FormatPNG
	}
	if t.Fit != nil {
		v.fit = *t.Fit
	}
	if t.Format != nil {
		v.format = *t.Format
	}
	if !slices.Contains(s.sizes(), v.Size) {
		names := make([]string, len(s.sizes()))
		for i, z := range s.sizes() {
			names[i] = z.String()
		}
		return variant{}, inputError("transform", ReasonImageSize, "%s is not an allowed image size; allowed: %s (the server's KILN_IMAGE_SIZES)", v.Size, strings.Join(names, ", "))
	}
	if v.fit != FitCover && v.fit != FitContain || v.format != FormatJPEG && v.format != FormatPNG {
		return variant{}, inputError("transform", ReasonImageSize, "unsupported fit %q or format %q", v.fit, v.format)
	}
	return v, nil
}

func (s *Service) imageMAC(id uuid.UUID, name string, exp int64) string {
	m := hmac.New(sha256.New, s.Images.Secret)
	fmt.Fprintf(m, "kiln image rendition\n%s\n%s\n%d", id, name, exp)
	return hex.EncodeToString(m.Sum(nil))
}

// transformURL returns the signed URL of a rendition of f, valid for d.
func (s *Service) transformURL(f *store.File, t Transform, d time.Duration) (string, error) {
	v, err := s.checkTransform(f, t)
	if err != nil {
		return "", err
	}
	if len(s.Images.Secret) == 0 {
		return "", errors.New("image renditions need a URL secret (files.Images.Secret)")
	}
	exp := time.Now().Add(d).Unix()
	name := v.String()
	return fmt.Sprintf("%s%s%s/%s?exp=%d&sig=%s", strings.TrimSuffix(s.Images.BaseURL, "/"), ImagePath, f.ID, name, exp, s.imageMAC(f.ID, name, exp)), nil
}

// renditions makes renditions once per key across concurrent requests and
// bounds how many are made at once.
type renditions struct {
	once  sync.Once
	group singleflight.Group
	slots chan struct{}
}

// ImageHandler serves rendition URLs (mount it at ImagePath): it checks
// the signature and expiry, reads the rendition from the blob store, or
// makes it from the original and stores it first. Responses are private
// (they are capabilities) and cacheable until the URL expires.
func (s *Service) ImageHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.serveImage(w, r); err != nil {
			status := http.StatusInternalServerError
			var he httpError
			if errors.As(err, &he) {
				status = he.status
			}
			if status >= 500 {
				// The caller logs through the server's middleware; the body
				// stays free of internals.
				http.Error(w, "could not make the image rendition", status)
				return
			}
			http.Error(w, he.msg, status)
		}
	})
}

type httpError struct {
	status int
	msg    string
}

func (e httpError) Error() string { return e.msg }

func (s *Service) serveImage(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return httpError{http.StatusMethodNotAllowed, "use GET"}
	}
	rest := strings.TrimPrefix(r.URL.Path, ImagePath)
	idPart, name, ok := strings.Cut(rest, "/")
	id, err := uuid.Parse(idPart)
	v, vok := parseVariant(name)
	if !ok || err != nil || !vok {
		return httpError{http.StatusNotFound, "no such image rendition"}
	}
	exp, err := strconv.ParseInt(r.URL.Query().Get("exp"), 10, 64)
	sig := r.URL.Query().Get("sig")
	if err != nil || len(s.Images.Secret) == 0 || !hmac.Equal([]byte(sig), []byte(s.imageMAC(id, name, exp))) {
		return httpError{http.StatusForbidden, "bad signature: ask File.url(transform:) for a new URL"}
	}
	left := time.Until(time.Unix(exp, 0))
	if left <= 0 {
		return httpError{http.StatusForbidden, "this URL has expired: ask File.url(transform:) for a new one"}
	}
	if !slices.Contains(s.sizes(), v.Size) {
		return httpError{http.StatusNotFound, "this image size is no longer allowed"}
	}
	ctx := r.Context()
	f, err := s.DB.File.Query().Where(file.ID(id), file.StatusEQ(file.StatusReady)).Only(ctx)
	if store.IsNotFound(err) {
		return httpError{http.StatusNotFound, "no such file"}
	}
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(storedKey(f) + "\n" + name))
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	h := w.Header()
	h.Set("Cache-Control", fmt.Sprintf("private, max-age=%d, immutable", int(left/time.Second)))
	h.Set("ETag", etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if match := r.Header.Get("If-None-Match"); match != "" && match == etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	body, err := s.rendition(ctx, f, v)
	if err != nil {
		return err
	}
	ct := "image/jpeg"
	if v.format == FormatPNG {
		ct = "image/png"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return nil
	}
	_, _ = w.Write(body)
	return nil
}

func renditionKey(id uuid.UUID, v variant) string {
	return renditionPrefix + id.String() + "/" + v.String()
}

// rendition returns the bytes of a rendition, making and storing it when
// the store has none.
func (s *Service) rendition(ctx context.Context, f *store.File, v variant) ([]byte, error) {
	st, err := s.blobs()
	if err != nil {
		return nil, err
	}
	key := renditionKey(f.ID, v)
	if b, err := readAll(ctx, st, key); err == nil {
		return b, nil
	} else if !errors.Is(err, ErrObjectNotFound) {
		return nil, err
	}
	s.renditions.once.Do(func() {
		n := s.Images.Concurrent
		if n <= 0 {
			n = 2
		}
		s.renditions.slots = make(chan struct{}, n)
	})
	// One maker per key; the others wait for its result. The work runs
	// without the request's context so a client that goes away does not
	// fail the others waiting on it.
	ch := s.renditions.group.DoChan(key, func() (any, error) {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		select {
		case s.renditions.slots <- struct{}{}:
		case <-mctx.Done():
			return nil, mctx.Err()
		}
		defer func() { <-s.renditions.slots }()
		b, err := s.makeRendition(mctx, st, f, v)
		if err != nil {
			return nil, err
		}
		if err := st.Put(mctx, key, bytes.NewReader(b), int64(len(b)), "image/"+strings.ToLower(string(v.format))); err != nil {
			return nil, fmt.Errorf("store rendition %s: %w", key, err)
		}
		return b, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func readAll(ctx context.Context, st Store, key string) ([]byte, error) {
	rc, err := st.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// makeRendition reads the original and renders it.
func (s *Service) makeRendition(ctx context.Context, st Store, f *store.File, v variant) ([]byte, error) {
	src, err := readAll(ctx, st, storedKey(f))
	if err != nil {
		return nil, fmt.Errorf("read original of file %s: %w", f.ID, err)
	}
	return render(src, v, s.Images.MaxPixels)
}

// render decodes an image (after checking its dimensions against
// maxPixels, 0: 40 million), resizes it into v's box and encodes it.
func render(src []byte, v variant, maxPixels int64) ([]byte, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(src))
	if err != nil {
		return nil, httpError{http.StatusUnprocessableEntity, "the file is not an image this server can read: " + err.Error()}
	}
	if maxPixels <= 0 {
		maxPixels = 40_000_000
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return nil, httpError{http.StatusUnprocessableEntity, fmt.Sprintf("the image is %dx%d, more than the %d pixels renditions are made of", cfg.Width, cfg.Height, maxPixels)}
	}
	img, err := imaging.Decode(bytes.NewReader(src), imaging.AutoOrientation(true))
	if err != nil {
		return nil, httpError{http.StatusUnprocessableEntity, "the file is not an image this server can read: " + err.Error()}
	}
	var out image.Image
	if v.fit == FitContain {
		out = imaging.Fit(img, v.Width, v.Height, imaging.Lanczos)
	} else {
		out = imaging.Fill(img, v.Width, v.Height, imaging.Center, imaging.Lanczos)
	}
	var buf bytes.Buffer
	if v.format == FormatPNG {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, out)
	} else {
		// JPEG has no alpha: transparent pixels go onto white, not black.
		b := out.Bounds()
		flat := imaging.Overlay(imaging.New(b.Dx(), b.Dy(), color.White), out, image.Pt(0, 0), 1)
		err = jpeg.Encode(&buf, flat, &jpeg.Options{Quality: 85})
	}
	if err != nil {
		return nil, fmt.Errorf("encode rendition: %w", err)
	}
	return buf.Bytes(), nil
}

// removeRenditions deletes every rendition of a file.
func removeRenditions(ctx context.Context, st Store, id uuid.UUID) error {
	var keys []string
	if err := st.List(ctx, renditionPrefix+id.String()+"/", func(o StoredObject) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := st.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalGQL reads a GraphQL ImageFit value.
func (f *Fit) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok || Fit(s) != FitCover && Fit(s) != FitContain {
		return fmt.Errorf("%v is not a valid ImageFit (COVER or CONTAIN)", v)
	}
	*f = Fit(s)
	return nil
}

// MarshalGQL writes a GraphQL ImageFit value.
func (f Fit) MarshalGQL(w io.Writer) { fmt.Fprint(w, strconv.Quote(string(f))) }

// UnmarshalGQL reads a GraphQL ImageFormat value.
func (f *ImageFormat) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok || ImageFormat(s) != FormatJPEG && ImageFormat(s) != FormatPNG {
		return fmt.Errorf("%v is not a valid ImageFormat (JPEG or PNG)", v)
	}
	*f = ImageFormat(s)
	return nil
}

// MarshalGQL writes a GraphQL ImageFormat value.
func (f ImageFormat) MarshalGQL(w io.Writer) { fmt.Fprint(w, strconv.Quote(string(f))) }
