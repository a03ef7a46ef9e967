package vnc

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
)

// IsBlank reports whether every pixel of img has the same colour (an image
// with no pixels is blank too), as a screen is before firmware draws on it.
func IsBlank(img image.Image) bool {
	b := img.Bounds()
	if b.Empty() {
		return true
	}
	if rgba, ok := img.(*image.RGBA); ok {
		first := rgba.Pix[rgba.PixOffset(b.Min.X, b.Min.Y):][:4]
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := rgba.Pix[rgba.PixOffset(b.Min.X, y):][:4*b.Dx()]
			for i := 0; i < len(row); i += 4 {
				if !bytes.Equal(row[i:i+4], first) {
					return false
				}
			}
		}
		return true
	}
	r0, g0, b0, a0 := img.At(b.Min.X, b.Min.Y).RGBA()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, g, bl, a := img.At(x, y).RGBA(); r != r0 || g != g0 || bl != b0 || a != a0 {
				return false
			}
		}
	}
	return true
}

// WritePNG writes img to path as a PNG; the file appears complete or not at all.
func WritePNG(path string, img image.Image) error {
	// A temporary file renamed into place keeps a half-written artifact from
	// ever being mistaken for a screenshot.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write png %s: %w", path, err)
	}
	tmp := f.Name()
	err = png.Encode(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// CreateTemp makes the file 0600; an artifact is for anyone to read.
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write png %s: %w", path, err)
	}
	return nil
}
