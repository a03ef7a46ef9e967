package cluster

import (
	"fmt"
	"io"
	"strings"
	"sync"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// kindLogger writes kind's user-facing messages, one per line, to w; with no writer it drops them.
type kindLogger struct {
	mu *sync.Mutex
	w  io.Writer
}

func newKindLogger(w io.Writer) kindLogger {
	if w == nil {
		w = io.Discard
	}
	return kindLogger{mu: &sync.Mutex{}, w: w}
}

func (l kindLogger) line(prefix, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "kind: %s%s\n", prefix, strings.TrimRight(msg, "\n"))
}

func (l kindLogger) Warn(message string)                       { l.line("WARNING: ", message) }
func (l kindLogger) Warnf(format string, args ...interface{})  { l.Warn(fmt.Sprintf(format, args...)) }
func (l kindLogger) Error(message string)                      { l.line("ERROR: ", message) }
func (l kindLogger) Errorf(format string, args ...interface{}) { l.Error(fmt.Sprintf(format, args...)) }

// V returns an info logger that writes only kind's default level (0): its higher levels are
// debugging output.
func (l kindLogger) V(level kindlog.Level) kindlog.InfoLogger {
	return kindInfo{l: l, enabled: level <= 0}
}

type kindInfo struct {
	l       kindLogger
	enabled bool
}

func (i kindInfo) Info(message string) {
	if i.enabled {
		i.l.line("", message)
	}
}

func (i kindInfo) Infof(format string, args ...interface{}) {
	if i.enabled {
		i.l.line("", fmt.Sprintf(format, args...))
	}
}

func (i kindInfo) Enabled() bool { return i.enabled }
