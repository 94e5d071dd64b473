package files

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/google/uuid"

	"kiln/runtime/store"
)

func TestParseSizes(t *testing.T) {
	got, err := ParseSizes(" 64x64, 1024x768 ,")
	if err != nil || len(got) != 2 || got[0] != (Size{64, 64}) || got[1] != (Size{1024, 768}) {
		t.Fatalf("ParseSizes = %v, %v", got, err)
	}
	for _, bad := range []string{"64", "64x", "x64", "0x10", "10x-1", "9000x10", "axb", "64x64x64"} {
		if _, err := ParseSizes(bad); err == nil {
			t.Errorf("ParseSizes(%q) accepted", bad)
		}
	}
}

// Every variant the server names parses back to itself, and nothing else
// parses: the handler re-derives the variant from the signed path.
func TestVariantNames(t *testing.T) {
	for _, z := range DefaultImageSizes {
		for _, fit := range []Fit{FitCover, FitContain} {
			for _, f := range []ImageFormat{FormatJPEG, FormatPNG} {
				v := variant{Size: z, fit: fit, format: f}
				back, ok := parseVariant(v.String())
				if !ok || back != v {
					t.Errorf("parseVariant(%q) = %v, %v", v, back, ok)
				}
			}
		}
	}
	for _, bad := range []string{"", "64x64", "64x64-cover", "64x64-cover.gif", "64x64-COVER.jpg", "064x64-cover.jpg",
		"64x64-fill.jpg", "64x64-cover.jpg/x", "../64x64-cover.jpg", "64x64-cover.jpeg"} {
		if v, ok := parseVariant(bad); ok {
			t.Errorf("parseVariant(%q) = %v, want refused", bad, v)
		}
	}
}

func TestCheckTransform(t *testing.T) {
	s := &Service{Images: Images{Sizes: []Size{{64, 64}, {200, 100}}}}
	png := &store.File{ID: uuid.New(), ContentType: "image/png"}
	jpg := &store.File{ID: uuid.New(), ContentType: "image/jpeg; charset=binary"}
	pdf := &store.File{ID: uuid.New(), ContentType: "application/pdf"}
	contain, pngFormat := FitContain, FormatPNG

	if v, err := s.checkTransform(png, Transform{Width: 64, Height: 64}); err != nil || v.String() != "64x64-cover.png" {
		t.Errorf("png default = %v, %v; want 64x64-cover.png", v, err)
	}
	if v, err := s.checkTransform(jpg, Transform{Width: 200, Height: 100, Fit: &contain, Format: &pngFormat}); err != nil || v.String() != "200x100-contain.png" {
		t.Errorf("jpeg as png = %v, %v", v, err)
	}
	var fe *Error
	if _, err := s.checkTransform(jpg, Transform{Width: 100, Height: 200}); !errors.As(err, &fe) || fe.Reason != ReasonImageSize || fe.Kind != "BAD_USER_INPUT" {
		t.Errorf("size not allowed: %v", err)
	}
	if _, err := s.checkTransform(pdf, Transform{Width: 64, Height: 64}); !errors.As(err, &fe) || fe.Reason != ReasonNotAnImage {
		t.Errorf("pdf: %v", err)
	}
	if _, err := (&Service{}).checkTransform(png, Transform{Width: 256, Height: 256}); err != nil {
		t.Errorf("default sizes refuse 256x256: %v", err)
	}
}

func testImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	return img
}

func encoded(t *testing.T, format string, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&b, img)
	case "jpeg":
		err = jpeg.Encode(&b, img, nil)
	case "gif":
		err = gif.Encode(&b, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// render makes boxes of the asked size (cover) or within it (contain), in
// the asked format, from every readable original.
func TestRender(t *testing.T) {
	src := testImage(300, 150)
	for _, in := range []string{"png", "jpeg", "gif"} {
		for _, c := range []struct {
			v          variant
			wantW      int
			wantH      int
			wantFormat string
		}{
			{variant{Size{64, 64}, FitCover, FormatJPEG}, 64, 64, "jpeg"},
			{variant{Size{64, 64}, FitContain, FormatPNG}, 64, 32, "png"},
			{variant{Size{100, 200}, FitCover, FormatPNG}, 100, 200, "png"},
		} {
			out, err := render(encoded(t, in, src), c.v, 0)
			if err != nil {
				t.Fatalf("%s -> %s: %v", in, c.v, err)
			}
			cfg, format, err := image.DecodeConfig(bytes.NewReader(out))
			if err != nil || format != c.wantFormat || cfg.Width != c.wantW || cfg.Height != c.wantH {
				t.Errorf("%s -> %s: %s %dx%d, %v; want %s %dx%d", in, c.v, format, cfg.Width, cfg.Height, err, c.wantFormat, c.wantW, c.wantH)
			}
		}
	}
}

// A small file that declares a huge image is refused before it is decoded.
func TestRenderRefusesHugeImages(t *testing.T) {
	src := encoded(t, "png", testImage(100, 100))
	if _, err := render(src, variant{Size{64, 64}, FitCover, FormatJPEG}, 100*100-1); err == nil {
		t.Fatal("an image over MaxPixels was rendered")
	}
	if _, err := render([]byte("not an image"), variant{Size{64, 64}, FitCover, FormatJPEG}, 0); err == nil {
		t.Fatal("garbage was rendered")
	}
}
