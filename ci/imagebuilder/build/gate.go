package build

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Gate lets one compiling step run at a time when targets build side by side. A Go build
// already keeps every core busy, so two at once only compete; what overlaps well is
// everything else (module downloads, debootstrap, apt-get, docker build and import), which
// runs outside the gate. A nil *Gate lets every step through at once.
type Gate struct {
	slot chan struct{}

	mu     sync.Mutex
	holder string
}

// NewGate returns a gate with one slot.
func NewGate() *Gate { return &Gate{slot: make(chan struct{}, 1)} }

// Step runs fn as the progress step name once the gate is free, saying whom it waits for;
// the step's time starts when it gets the gate.
func (g *Gate) Step(ctx context.Context, p *Progress, name string, fn func() error) error {
	return g.Do(ctx, p, name, func() error { return p.Step(name, fn) })
}

// Do runs fn, the compiling part of what name does, once the gate is free, saying on p whom
// it waits for.
func (g *Gate) Do(ctx context.Context, p *Progress, name string, fn func() error) error {
	if g == nil {
		return fn()
	}
	select {
	case g.slot <- struct{}{}:
	default:
		g.mu.Lock()
		holder := g.holder
		g.mu.Unlock()
		p.printf("... %s: waits for %s\n", name, holder)
		select {
		case g.slot <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	g.mu.Lock()
	g.holder = name
	g.mu.Unlock()
	defer func() { <-g.slot }()
	return fn()
}

// Target is one of the builder's targets.
type Target struct {
	Name  string
	Build func(context.Context, Options) ([]string, error)
}

// TargetError is the failure of one target.
type TargetError struct {
	Target string
	Err    error
}

func (e *TargetError) Error() string { return "target " + e.Target + ": " + e.Err.Error() }
func (e *TargetError) Unwrap() error { return e.Err }

// BuildConcurrently builds targets side by side, their compiling steps one at a time through
// o.CPU (a new Gate when nil), and returns each one's image names in the order of targets. The
// first failure, a *TargetError, stops the rest.
func BuildConcurrently(ctx context.Context, o Options, targets []Target) ([][]string, error) {
	if o.CPU == nil {
		o.CPU = NewGate()
	}
	names := make([][]string, len(targets))
	g, gctx := errgroup.WithContext(ctx)
	for i, t := range targets {
		g.Go(func() error {
			n, err := t.Build(gctx, o)
			if err != nil {
				return &TargetError{Target: t.Name, Err: err}
			}
			names[i] = n
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return names, nil
}
