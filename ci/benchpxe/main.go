// Command benchpxe measures our PXE server's protocols under load beside dnsmasq's, on the same
// payload, inside network namespaces it creates and removes (also on Ctrl-C):
//
//   - DHCP: DHCPCLIENTS concurrent clients with distinct MACs, all on our allow-list, against
//     ours (dnsmasq answers only its one reservation in the lab's configuration); leases obtained,
//     duplicate addresses, seconds, requests the clients sent again, and requests the server's
//     socket dropped (the drops column of /proc/net/udp in its namespace);
//   - TFTP: one 10 MiB transfer (median of 21, taken in turns), then TRANSFERS concurrent
//     ones (median of three), each from a source port of its own with blksize 1468 as iPXE
//     asks, against ours and against dnsmasq; with each run the server's CPU time and the
//     clients';
//   - HTTP: TRANSFERS concurrent 10 MiB downloads from ours.
//
// Layout: a hub namespace holds a bridge; our server (fixtures/pxe-server, or framework/pxe in
// this process with -cpuprofile), dnsmasq and the clients sit in namespaces of their own, each
// joined to the bridge by a veth pair. No address exists outside these namespaces.
//
// It prints each phase, the load average before and after, and ends with one line:
//
//	dhcp_clients=… dhcp_leases=… dhcp_dups=… dhcp_s=… dhcp_retransmits=… dhcp_drops=…
//	tftp1_ours=… tftp1_dnsmasq=… tftp1_ratio=…
//	tftp100_ours=… tftp100_dnsmasq=… tftp100_ratio=… tftp100_cpu_ours=… tftp100_cpu_dnsmasq=…
//	http100_s=…
//
// Ratios are ours over dnsmasq: at most 1.0 means ours is at least as fast.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/lab"
)

func main() {
	// dnsmasq is started with Pdeathsig, which Linux sends when the thread that started it
	// exits, not the process: keep main on the one thread that lives as long as the process.
	runtime.LockOSThread()
	clients := flag.Int("dhcp-clients", 1000, "concurrent DHCP clients, each with a reservation")
	transfers := flag.Int("transfers", 100, "concurrent TFTP and HTTP transfers")
	sizeMiB := flag.Int("size-mib", 10, "payload size in MiB")
	cpuProfile := flag.String("cpuprofile", "", "run our server in this process and write a CPU profile of the concurrent TFTP transfers from it to this file")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, options{clients: *clients, transfers: *transfers, size: *sizeMiB << 20, cpuProfile: *cpuProfile})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchpxe:", err)
		os.Exit(1)
	}
}

type options struct {
	clients, transfers, size int
	cpuProfile               string
}

// How many runs each TFTP figure is the median of. One transfer takes a tenth of a second, and
// on a shared machine single runs of the same server differ by a half or more: resampling 41
// runs of each server here, the ratio of medians of 5 runs strayed past 1.0 in a quarter of
// the draws when the ratio of all 41 was 0.85, of 21 runs in a tenth. Twenty-one cost about
// four seconds.
const (
	singleRuns     = 21
	concurrentRuns = 3
)

// Each phase is bounded: a run that stalls ends with an error instead of hanging.
const phaseBound = 5 * time.Minute

func run(ctx context.Context, o options) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root to create network namespaces")
	}
	if o.clients < 1 || o.clients > 4000 || o.transfers < 2 || o.size < 1 {
		return fmt.Errorf("want 1 to 4000 DHCP clients (got %d), at least two concurrent transfers (got %d) and a payload", o.clients, o.transfers)
	}
	if _, err := lab.Sweep(ctx); err != nil {
		fmt.Println("benchpxe: sweeping namespaces of dead runs:", err)
	}
	fmt.Printf("benchpxe: load average before: %s\n", loadavg())

	dir, err := os.MkdirTemp("", "pxec-benchpxe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := writePayload(dir, o.size); err != nil {
		return err
	}

	bn, err := newBenchNet(ctx)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = errors.Join(err, bn.remove(cctx))
	}()
	if err != nil {
		return err
	}

	// Our server runs as its own process, as dnsmasq does, unless it is to be profiled: in
	// this process it shares the Go scheduler with the clients' goroutines.
	var stopOurs func(context.Context) error
	oursPID := 0 // in this process: its CPU time would include the clients
	if o.cpuProfile != "" {
		srv, err := startOursInProcess(ctx, bn, dir, o.clients)
		if err != nil {
			return err
		}
		stopOurs = srv.Stop
	} else {
		p, err := startOurs(ctx, bn, dir, dir, o.clients)
		if err != nil {
			return err
		}
		stopOurs = p.stop
		oursPID = p.cmd.Process.Pid
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = errors.Join(err, stopOurs(cctx))
	}()
	if err := waitTFTP(ctx, bn, oursTFTP); err != nil {
		return err
	}

	var r result
	r.dhcpClients = o.clients
	if r.dhcp, err = benchDHCP(ctx, bn, o.clients); err != nil {
		return err
	}
	fmt.Printf("benchpxe: dhcp ours: %d clients, %d leases, %d duplicate addresses, %.2fs; %d requests sent again, %d dropped by the server's full receive buffer\n",
		o.clients, r.dhcp.leases, r.dhcp.dups, r.dhcp.secs, r.dhcp.retransmits, r.dhcp.drops)

	dnsmasq, err := lab.StartDnsmasq(ctx, bn.dnsmasqSegment(), lab.DnsmasqConfig{
		MAC: reservationMAC(0), IP: reservationIP(0),
		Kernel: filepath.Join(dir, payloadName), Initrd: filepath.Join(dir, initrdName),
		// dnsmasq serves at most 50 transfers at once unless told otherwise.
		ExtraArgs: []string{fmt.Sprintf("--tftp-max=%d", 2*o.transfers+10)},
	})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = errors.Join(err, dnsmasq.Stop(cctx))
	}()

	for _, server := range []string{oursTFTP, dnsmasqTFTP} {
		if err := waitTFTP(ctx, bn, server); err != nil {
			fmt.Printf("benchpxe: dnsmasq's log ends:\n%s\n", tail(dnsmasq.Log(), 2000))
			return err
		}
	}
	// Server CPU time is what load from elsewhere changes least: it is measured when each
	// server is a process of its own. The clients' CPU (this process's) shows how much of the
	// two cores the clients took beside the server.
	pids := map[string]int{"ours": oursPID, "dnsmasq": dnsmasq.PID()}
	r.cpuN = map[string]float64{}
	tftpTargets := []struct {
		name   string
		server string
	}{{"ours", oursTFTP}, {"dnsmasq", dnsmasqTFTP}}
	// Each figure is a median, of singleRuns single transfers and of concurrentRuns rounds of
	// concurrent ones, taken in turns from each server so that a burst of load from elsewhere
	// weighs on both alike, each server first in every other turn.
	for _, n := range []int{1, o.transfers} {
		runs := concurrentRuns
		if n == 1 {
			runs = singleRuns
		}
		times, cpus := map[string][]float64{}, map[string][]float64{}
		for run := range runs {
			for i := range tftpTargets {
				tgt := tftpTargets[(i+run)%len(tftpTargets)]
				var prof func()
				if n > 1 && tgt.name == "ours" && o.cpuProfile != "" {
					if prof, err = startProfile(o.cpuProfile); err != nil {
						return err
					}
				}
				timeouts := tftpClientTimeouts.Load()
				cpu0, client0 := cpuSeconds(pids[tgt.name]), ownCPUSeconds()
				secs, err := benchTFTP(ctx, bn, tgt.server, n, int64(o.size))
				cpu, client := cpuSeconds(pids[tgt.name])-cpu0, ownCPUSeconds()-client0
				timeouts = tftpClientTimeouts.Load() - timeouts
				if prof != nil {
					prof()
				}
				if err != nil {
					return fmt.Errorf("tftp %s, %d concurrent: %w", tgt.name, n, err)
				}
				fmt.Printf("benchpxe: tftp %-7s %3d concurrent: %.3fs, server CPU %.3fs, clients' CPU %.3fs (client timeouts: %d)\n", tgt.name, n, secs, cpu, client, timeouts)
				times[tgt.name] = append(times[tgt.name], secs)
				cpus[tgt.name] = append(cpus[tgt.name], cpu)
			}
		}
		for name, ts := range times {
			r.setTFTP(n, name, median(ts))
			if n > 1 {
				r.cpuN[name] = median(cpus[name])
			}
		}
	}

	if r.httpS, err = benchHTTP(ctx, bn, o.transfers, int64(o.size)); err != nil {
		return err
	}
	fmt.Printf("benchpxe: http ours    %3d concurrent: %.2fs\n", o.transfers, r.httpS)
	fmt.Printf("benchpxe: load average after: %s\n", loadavg())
	fmt.Println(r.line(o.transfers))
	return nil
}

// result is what the closing line reports.
type result struct {
	dhcpClients             int
	dhcp                    dhcpResult
	tftp1Ours, tftp1Dnsmasq float64
	tftpNOurs, tftpNDnsmasq float64
	httpS                   float64
	cpuN                    map[string]float64 // server CPU seconds, concurrent TFTP
}

func (r *result) setTFTP(n int, who string, secs float64) {
	switch {
	case n == 1 && who == "ours":
		r.tftp1Ours = secs
	case n == 1:
		r.tftp1Dnsmasq = secs
	case who == "ours":
		r.tftpNOurs = secs
	default:
		r.tftpNDnsmasq = secs
	}
}

func (r *result) line(n int) string {
	return fmt.Sprintf("dhcp_clients=%d dhcp_leases=%d dhcp_dups=%d dhcp_s=%.2f dhcp_retransmits=%d dhcp_drops=%d tftp1_ours=%.3f tftp1_dnsmasq=%.3f tftp1_ratio=%.2f tftp%d_ours=%.2f tftp%d_dnsmasq=%.2f tftp%d_ratio=%.2f tftp%d_cpu_ours=%.2f tftp%d_cpu_dnsmasq=%.2f http%d_s=%.2f",
		r.dhcpClients, r.dhcp.leases, r.dhcp.dups, r.dhcp.secs, r.dhcp.retransmits, r.dhcp.drops,
		r.tftp1Ours, r.tftp1Dnsmasq, r.tftp1Ours/r.tftp1Dnsmasq,
		n, r.tftpNOurs, n, r.tftpNDnsmasq, n, r.tftpNOurs/r.tftpNDnsmasq,
		n, r.cpuN["ours"], n, r.cpuN["dnsmasq"], n, r.httpS)
}

const (
	payloadName = "payload.bin"
	initrdName  = "initrd.img"
)

// writePayload writes a random payload of size bytes and a small initrd (our server needs both).
func writePayload(dir string, size int) error {
	b := make([]byte, size)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(dir, payloadName), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, initrdName), []byte("initrd\n"), 0o644)
}

// startProfile starts the CPU profile and returns what stops it.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		fmt.Println("benchpxe: CPU profile of our server's concurrent TFTP transfers in", path)
	}, nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return string(b[:len(b)-1])
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// median of a non-empty list.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// ownCPUSeconds is the CPU time this process has used, its ended threads' included.
func ownCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// cpuSeconds is the CPU time process pid's threads have used, from the scheduler's account in
// /proc/<pid>/task/*/schedstat (nanoseconds; /proc/<pid>/stat counts in hundredths of a second,
// too coarse for one transfer); 0 when pid is 0 or unreadable.
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil {
		return 0
	}
	var ns int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread has ended
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		v, _ := strconv.ParseInt(f[0], 10, 64)
		ns += v
	}
	return float64(ns) / 1e9
}
