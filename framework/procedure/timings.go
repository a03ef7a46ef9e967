package procedure

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Step names a milestone of the procedure, measured from the guest's creation.
type Step string

// The milestones, in the order a successful boot reaches them.
const (
	StepRunning Step = "running"    // VMI phase Running (still paused)
	StepIPXE    Step = "ipxe"       // iPXE opened the bridge interface
	StepDHCP    Step = "dhcp"       // iPXE's DHCP result, matched by the server's ACK
	StepPayload Step = "payload"    // kernel and initramfs served
	StepReady   Step = "ready"      // the guest's ready line
	StepSSH     Step = "ssh"        // a command ran over SSH with the pinned host key
	StepDone    Step = "assertions" // every assertion of the spec passed
)

// Timings records when each milestone was reached, relative to Start.
type Timings struct {
	mu    sync.Mutex
	start time.Time
	marks []Mark
}

// Mark is one milestone.
type Mark struct {
	Step    Step    `json:"step"`
	Seconds float64 `json:"seconds"`
}

// Start sets time zero: the VMI's creation.
func (t *Timings) Start() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.start, t.marks = time.Now(), nil
}

// Mark records step now; a step marked twice keeps its first time.
func (t *Timings) Mark(step Step) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.start.IsZero() {
		return
	}
	for _, m := range t.marks {
		if m.Step == step {
			return
		}
	}
	t.marks = append(t.marks, Mark{Step: step, Seconds: time.Since(t.start).Seconds()})
}

// Marks are milestones in the order reached; they print as "running=4.9s dhcp=8.2s ...".
type Marks []Mark

// Marks returns the milestones reached, in order.
func (t *Timings) Marks() Marks {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append(Marks(nil), t.marks...)
}

// String renders the marks as "running=4.9s dhcp=8.2s ...".
func (m Marks) String() string {
	var parts []string
	for _, mk := range m {
		parts = append(parts, fmt.Sprintf("%s=%.1fs", mk.Step, mk.Seconds))
	}
	if len(parts) == 0 {
		return "no milestone reached"
	}
	return strings.Join(parts, " ")
}

// String renders the milestones reached so far.
func (t *Timings) String() string { return t.Marks().String() }
