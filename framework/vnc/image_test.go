package vnc

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestIsBlankTellsUniformFromDrawnScreens(t *testing.T) {
	uniform := func(c color.RGBA) *image.RGBA {
		img := image.NewRGBA(image.Rect(0, 0, 5, 4))
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
		}
		return img
	}
	withDot := func(img *image.RGBA, x, y int) *image.RGBA {
		img.SetRGBA(x, y, color.RGBA{R: 0xaa, G: 0xaa, B: 0xaa, A: 0xff})
		return img
	}
	black := color.RGBA{A: 0xff}
	grey := image.NewGray(image.Rect(0, 0, 3, 3))
	greyDot := image.NewGray(image.Rect(0, 0, 3, 3))
	greyDot.SetGray(2, 2, color.Gray{Y: 1})
	tests := []struct {
		name string
		img  image.Image
		want bool
	}{
		{"black screen", uniform(black), true},
		{"blue screen", uniform(color.RGBA{B: 0xa8, A: 0xff}), true},
		{"no pixels", image.NewRGBA(image.Rectangle{}), true},
		{"one pixel", image.NewRGBA(image.Rect(0, 0, 1, 1)), true},
		{"last pixel differs", withDot(uniform(black), 4, 3), false},
		{"first pixel differs", withDot(uniform(black), 0, 0), false},
		{"sub-image of a uniform region", withDot(uniform(black), 4, 3).SubImage(image.Rect(0, 0, 3, 3)), true},
		{"sub-image reaching a drawn pixel", withDot(uniform(black), 4, 3).SubImage(image.Rect(2, 2, 5, 4)), false},
		{"uniform grey image", grey, true},
		{"grey image with a dot", greyDot, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsBlank(tt.img); got != tt.want {
				t.Errorf("IsBlank() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWritePNGRoundTrips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "screen.png")
	img := want(1, 7, 5)
	if err := WritePNG(path, img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	got := image.NewRGBA(back.Bounds())
	for y := range 5 {
		for x := range 7 {
			got.Set(x, y, back.At(x, y))
		}
	}
	if got.Rect != img.Rect || !slices.Equal(got.Pix, img.Pix) {
		t.Errorf("PNG holds %v, want %v", got.Pix, img.Pix)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the PNG (no temporary file left)", len(entries))
	}
}

func TestWritePNGNamesPathThatFailed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "screen.png")
	err := WritePNG(path, want(1, 2, 2))
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("WritePNG into a missing directory: %v, want an error naming %s", err, path)
	}
}
