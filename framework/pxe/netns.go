package pxe

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// enterNetns moves the calling OS thread into the network namespace at path.
// The caller must have called runtime.LockOSThread and must never unlock: a
// goroutine that exits while still locked takes its thread with it, so the
// namespace never leaks to other goroutines.
func enterNetns(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	return nil
}

// inNetns runs fn on a fresh OS thread inside the namespace at path (or
// directly when path is empty) and returns its error. Sockets fn opens keep
// their namespace after the thread is gone.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see enterNetns
		if err := enterNetns(path); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}
