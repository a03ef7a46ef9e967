package console

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// tailLines is how much cleaned text an ExpectError carries: enough to see
// the last firmware or kernel messages before the wait ended.
const tailLines = 20

// ErrFailPattern is wrapped by an ExpectError when a fail-fast pattern
// matched before the awaited one.
var ErrFailPattern = errors.New("fail pattern matched")

// ExpectError says what an expectation waited for, why it stopped, and
// what the console showed last.
type ExpectError struct {
	// Want is the awaited pattern, its Named name, or the patterns
	// joined with " | ".
	Want string
	// Fail is the fail-fast pattern that matched, when that ended the wait (Error quotes what
	// it matched, Match, rather than the pattern, which a Phrase makes unreadable).
	Fail string
	// Match is the text Fail matched.
	Match string
	// Tail is the last lines of the cleaned console text.
	Tail string
	// Err is ctx.Err(), ErrFailPattern, ErrClosed, or ErrStreamEnded
	// joined with the stream's own error.
	Err error
}

// Error names the awaited pattern, the reason and the console's last lines.
func (e *ExpectError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "expect %s on console: ", e.Want)
	if e.Fail != "" {
		fmt.Fprintf(&b, "console printed %q, which fails the wait", e.Match)
	} else {
		b.WriteString(e.Err.Error())
	}
	if e.Tail == "" {
		b.WriteString("; console printed nothing")
		return b.String()
	}
	fmt.Fprintf(&b, "; last %d console lines:", tailLines)
	for _, l := range strings.Split(e.Tail, "\n") {
		b.WriteString("\n  | ")
		b.WriteString(l)
	}
	return b.String()
}

// Unwrap returns the reason, for errors.Is.
func (e *ExpectError) Unwrap() error { return e.Err }

// ExpectOption adjusts one Expect call.
type ExpectOption interface {
	applyExpect(*expectConfig)
}

type expectConfig struct {
	fail []*regexp.Regexp
	name string
}

type expectOptionFunc func(*expectConfig)

func (f expectOptionFunc) applyExpect(c *expectConfig) { f(c) }

// FailOn makes Expect fail at once when any of res matches before the
// awaited pattern, e.g. iPXE's "Connection timed out" while waiting for the
// guest's ready line.
func FailOn(res ...*regexp.Regexp) ExpectOption {
	return expectOptionFunc(func(c *expectConfig) {
		c.fail = append(c.fail, res...)
	})
}

// Named makes errors call the awaited pattern name instead of spelling out
// its regular expression, e.g. "guest ready line" for a long Phrase.
func Named(name string) ExpectOption {
	return expectOptionFunc(func(c *expectConfig) {
		c.name = name
	})
}

// Expect waits until re matches the cleaned text after the cursor, moves
// the cursor past the match, and returns the match and its submatches.
// It fails when ctx ends, the stream ends, or a FailOn pattern matches
// first.
func (c *Console) Expect(ctx context.Context, re *regexp.Regexp, opts ...ExpectOption) ([]string, error) {
	cfg := expectConfig{name: slashed(re)}
	for _, o := range opts {
		o.applyExpect(&cfg)
	}
	pats := append([]*regexp.Regexp{re}, cfg.fail...)
	i, m, err := c.match(ctx, pats, cfg.name)
	if err != nil {
		return nil, err
	}
	if i > 0 {
		return nil, &ExpectError{
			Want:  cfg.name,
			Fail:  slashed(pats[i]),
			Match: m[0],
			Tail:  c.tail(),
			Err:   ErrFailPattern,
		}
	}
	return m, nil
}

// ExpectAny waits until one of res matches after the cursor and returns
// its index and submatches; when several match, the earliest match in the
// text wins, and the lowest index breaks a tie.
func (c *Console) ExpectAny(ctx context.Context, res ...*regexp.Regexp) (int, []string, error) {
	want := make([]string, len(res))
	for i, re := range res {
		want[i] = slashed(re)
	}
	return c.match(ctx, res, strings.Join(want, " | "))
}

// match is the wait loop behind Expect and ExpectAny.
func (c *Console) match(ctx context.Context, pats []*regexp.Regexp, want string) (int, []string, error) {
	if len(pats) == 0 {
		return -1, nil, errors.New("expect on console: no pattern")
	}
	for {
		c.mu.Lock()
		rest := c.text[c.cursor:]
		best, bestLoc := -1, []int(nil)
		for i, re := range pats {
			loc := re.FindSubmatchIndex(rest)
			if loc != nil && (best < 0 || loc[0] < bestLoc[0]) {
				best, bestLoc = i, loc
			}
		}
		if best >= 0 {
			m := make([]string, len(bestLoc)/2)
			for j := range m {
				if bestLoc[2*j] >= 0 {
					m[j] = string(rest[bestLoc[2*j]:bestLoc[2*j+1]])
				}
			}
			c.cursor += bestLoc[1]
			c.mu.Unlock()
			return best, m, nil
		}
		var stop error
		switch {
		case c.closed:
			stop = ErrClosed
		case c.streamErr != nil:
			stop = fmt.Errorf("%w: %w", ErrStreamEnded, c.streamErr)
		}
		changed := c.changed
		c.mu.Unlock()

		if stop == nil {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				stop = ctx.Err()
			}
		}
		return -1, nil, &ExpectError{Want: want, Tail: c.tail(), Err: stop}
	}
}

// slashed spells a pattern for errors the way people write one.
func slashed(re *regexp.Regexp) string {
	return "/" + re.String() + "/"
}

// tail returns the last tailLines lines of the cleaned text.
func (c *Console) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return lastLines(c.text, tailLines)
}

// lastLines returns the last n lines of text, without a final newline.
func lastLines(text []byte, n int) string {
	s := strings.TrimRight(string(text), "\n")
	if s == "" {
		return ""
	}
	i := len(s)
	for ; n > 0 && i > 0; n-- {
		i = strings.LastIndexByte(s[:i], '\n')
		if i < 0 {
			return s
		}
	}
	return s[i+1:]
}

// Phrase returns a pattern for the words of s that also matches when the
// firmware wraps the text across lines: SeaBIOS's serial console breaks
// lines at column 80, wherever iPXE's progress dots left the cursor, even
// inside a word.
func Phrase(s string) *regexp.Regexp {
	return regexp.MustCompile(phrase(s))
}

// AnyPhrase is Phrase for several phrases: it matches any one of them.
func AnyPhrase(ss ...string) *regexp.Regexp {
	alts := make([]string, len(ss))
	for i, s := range ss {
		alts[i] = phrase(s)
	}
	return regexp.MustCompile(strings.Join(alts, "|"))
}

// phrase is Phrase's pattern for s.
func phrase(s string) string {
	var b strings.Builder
	for i, w := range strings.Fields(s) {
		if i > 0 {
			b.WriteString(`\s+`)
		}
		for j, r := range w {
			if j > 0 {
				b.WriteString(`\n?`)
			}
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}
