package apply

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Defaults of the wait options.
const (
	// DefaultEstablishTimeout bounds the wait for an applied CRD to be Established.
	DefaultEstablishTimeout = time.Minute
	// DefaultDeleteTimeout bounds each wait of Undo for an object to be gone.
	DefaultDeleteTimeout = 5 * time.Minute
)

// Existing says what Apply does with an object that exists already.
type Existing int

const (
	// ReclaimOurs, the default, creates each object and leaves an existing one exactly as it
	// is, unless it carries ManagedByLabel: then it is a leftover of an earlier run, which is
	// updated to the manifest and recorded for Undo.
	ReclaimOurs Existing = iota
	// ApplyOver server-side applies every object (forcing conflicts), so an existing one is
	// changed to the manifest; it is still never deleted by Undo.
	ApplyOver
)

// Option changes what an Applier does.
type Option interface {
	apply(*settings) error
}

type optionFunc func(*settings) error

func (f optionFunc) apply(s *settings) error { return f(s) }

type settings struct {
	existing         Existing
	namespace        string
	establishTimeout time.Duration
	deleteTimeout    time.Duration
	waitGone         map[string]bool
	undo             map[string]func(context.Context, Ref) error
	log              io.Writer
	prefix           string
}

func defaultSettings() settings {
	return settings{
		establishTimeout: DefaultEstablishTimeout,
		deleteTimeout:    DefaultDeleteTimeout,
		waitGone:         map[string]bool{},
		undo:             map[string]func(context.Context, Ref) error{},
		log:              io.Discard,
	}
}

// WithExisting sets the policy for objects that exist already (default ReclaimOurs).
func WithExisting(e Existing) Option {
	return optionFunc(func(s *settings) error {
		if e != ReclaimOurs && e != ApplyOver {
			return fmt.Errorf("existing-object policy %d: unknown", e)
		}
		s.existing = e
		return nil
	})
}

// WithNamespace puts namespaced objects that name no namespace into ns.
func WithNamespace(ns string) Option {
	return optionFunc(func(s *settings) error {
		s.namespace = ns
		return nil
	})
}

// WithEstablishTimeout bounds the wait for each applied CRD to be Established (default
// DefaultEstablishTimeout); the caller's context still applies.
func WithEstablishTimeout(d time.Duration) Option {
	return optionFunc(func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("establish timeout %v: must be positive", d)
		}
		s.establishTimeout = d
		return nil
	})
}

// WithDeleteTimeout bounds each wait of Undo for an object to be gone (default
// DefaultDeleteTimeout); the caller's context still applies.
func WithDeleteTimeout(d time.Duration) Option {
	return optionFunc(func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("delete timeout %v: must be positive", d)
		}
		s.deleteTimeout = d
		return nil
	})
}

// WithWaitGone makes Undo wait until each object of these kinds is gone before it goes on
// (a custom resource whose finalizer the operator runs, say), and stop when one does not go.
func WithWaitGone(kinds ...string) Option {
	return optionFunc(func(s *settings) error {
		for _, k := range kinds {
			s.waitGone[k] = true
		}
		return nil
	})
}

// WithUndo makes Undo remove objects of kind with fn instead of deleting them (a DaemonSet
// whose nodes need cleaning after its pods end, say).
func WithUndo(kind string, fn func(ctx context.Context, r Ref) error) Option {
	return optionFunc(func(s *settings) error {
		if fn == nil {
			return fmt.Errorf("undo function for %s: nil", kind)
		}
		s.undo[kind] = fn
		return nil
	})
}

// WithLog writes one line, starting with prefix, for each object created, adopted, kept or
// deleted.
func WithLog(w io.Writer, prefix string) Option {
	return optionFunc(func(s *settings) error {
		if w == nil {
			return fmt.Errorf("log writer: nil")
		}
		s.log, s.prefix = w, prefix
		return nil
	})
}
