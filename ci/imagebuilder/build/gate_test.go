package build

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGateRunsOneStepAtATime(t *testing.T) {
	g := NewGate()
	var out strings.Builder
	var mu sync.Mutex
	p := NewProgress(writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) }), time.Hour)
	var running, most atomic.Int32
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.Step(context.Background(), p, "compile "+string(rune('a'+i)), func() error {
				n := running.Add(1)
				for {
					m := most.Load()
					if n <= m || most.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				running.Add(-1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("%d steps ran at once, want 1", most.Load())
	}
	if got := len(p.Steps()); got != 4 {
		t.Errorf("%d steps recorded, want 4", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(out.String(), ": waits for compile ") {
		t.Errorf("no step said whom it waited for:\n%s", out.String())
	}
}

func TestGateWaitEndsWithTheContext(t *testing.T) {
	g := NewGate()
	p := NewProgress(io.Discard, time.Hour)
	hold, release := make(chan struct{}), make(chan struct{})
	go g.Do(context.Background(), p, "holder", func() error { close(hold); <-release; return nil })
	<-hold
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ran := false
	err := g.Do(ctx, p, "waiter", func() error { ran = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Errorf("Do = %v (ran %v), want the context's error without running", err, ran)
	}
}

func TestNilGateRunsAtOnce(t *testing.T) {
	var g *Gate
	ran := false
	if err := g.Step(context.Background(), NewProgress(io.Discard, time.Hour), "x", func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("Step = %v, ran %v", err, ran)
	}
}

func TestBuildConcurrentlyKeepsOrderAndNamesTheFailure(t *testing.T) {
	o := Options{Progress: NewProgress(io.Discard, time.Hour)}
	names, err := BuildConcurrently(context.Background(), o, []Target{
		{Name: "slow", Build: func(context.Context, Options) ([]string, error) {
			time.Sleep(20 * time.Millisecond)
			return []string{"a"}, nil
		}},
		{Name: "fast", Build: func(context.Context, Options) ([]string, error) { return []string{"b", "c"}, nil }},
	})
	if err != nil || !reflect.DeepEqual(names, [][]string{{"a"}, {"b", "c"}}) {
		t.Fatalf("names %q, err %v", names, err)
	}

	stopped := make(chan error, 1)
	_, err = BuildConcurrently(context.Background(), o, []Target{
		{Name: "waits", Build: func(ctx context.Context, o Options) ([]string, error) {
			<-ctx.Done()
			stopped <- ctx.Err()
			return nil, ctx.Err()
		}},
		{Name: "breaks", Build: func(context.Context, Options) ([]string, error) { return nil, errors.New("boom") }},
	})
	var te *TargetError
	if !errors.As(err, &te) || te.Target != "breaks" || !strings.Contains(err.Error(), "target breaks: boom") {
		t.Fatalf("err = %v, want target breaks' failure", err)
	}
	if e := <-stopped; !errors.Is(e, context.Canceled) {
		t.Errorf("the other target saw %v, want it cancelled", e)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
