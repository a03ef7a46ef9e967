package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// iPXE asks for this block size: an Ethernet frame's payload less the IP and UDP headers and
// TFTP's four bytes.
const tftpBlockSize = 1468

// TFTP client bounds: a lost packet is asked for again after tftpWait, tftpTries times.
const (
	tftpWait  = time.Second
	tftpTries = 5
)

// benchTFTP fetches the payload n times at once from server, each transfer from a socket of its
// own in the client namespace, and returns the seconds until the last one completed.
func benchTFTP(ctx context.Context, bn *benchNet, server string, n int, size int64) (float64, error) {
	dst, err := netip.ParseAddrPort(server)
	if err != nil {
		return 0, err
	}
	conns := make([]*net.UDPConn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err := bn.client.Do(func() error {
		for range n {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(clientAddr.Addr(), 0)))
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("open client sockets: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, phaseBound)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
			defer stop()
			got, err := tftpGet(c, dst, payloadName)
			if err == nil && got != size {
				err = fmt.Errorf("got %d bytes, want %d", got, size)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return secs, errors.Join(errs...)
}

// tftpClientTimeouts counts the client's waits that ran out (and so sent again), over all
// transfers: each costs tftpWait, so a few explain a slow figure.
var tftpClientTimeouts atomic.Int64

// waitTFTP fetches the small file from server until that works, so that a measurement never
// includes a server's start (dnsmasq prints that it is ready a moment before it answers).
func waitTFTP(ctx context.Context, bn *benchNet, server string) error {
	dst, err := netip.ParseAddrPort(server)
	if err != nil {
		return err
	}
	var last error
	for range 20 {
		var c *net.UDPConn
		if err := bn.client.Do(func() error {
			var err error
			c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(clientAddr.Addr(), 0)))
			return err
		}); err != nil {
			return err
		}
		_, last = tftpGet(c, dst, initrdName)
		c.Close()
		if last == nil || ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("tftp %s never answered: %w", server, last)
}

// tftpGet is a minimal RFC 1350 read with the blksize and tsize options (RFC 2348, 2349), as
// iPXE does it: it returns the bytes received.
func tftpGet(c *net.UDPConn, server netip.AddrPort, name string) (int64, error) {
	rrq := []byte{0, 1}
	for _, f := range []string{name, "octet", "blksize", strconv.Itoa(tftpBlockSize), "tsize", "0"} {
		rrq = append(append(rrq, f...), 0)
	}
	last, peer := rrq, server // what to send again on a timeout, and to whom
	var tid netip.AddrPort    // the server's transfer port, from its first answer
	blksize, next, total := 512, uint16(1), int64(0)
	buf := make([]byte, 65536)
	ack := func(block uint16) []byte { return []byte{0, 4, byte(block >> 8), byte(block)} }
	if _, err := c.WriteToUDPAddrPort(rrq, server); err != nil {
		return 0, err
	}
	for tries := 0; ; {
		c.SetReadDeadline(time.Now().Add(tftpWait))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && tries < tftpTries {
				tries++
				tftpClientTimeouts.Add(1)
				if _, err := c.WriteToUDPAddrPort(last, peer); err != nil {
					return total, err
				}
				continue
			}
			return total, fmt.Errorf("block %d: %w", next, err)
		}
		if n < 4 {
			continue
		}
		if !tid.IsValid() {
			tid, peer = from, from
		} else if from != tid {
			continue
		}
		tries = 0
		switch binary.BigEndian.Uint16(buf) {
		case 6: // OACK
			if next != 1 || total != 0 {
				continue
			}
			opts := splitZ(buf[2:n])
			for i := 0; i+1 < len(opts); i += 2 {
				if opts[i] == "blksize" {
					if v, err := strconv.Atoi(opts[i+1]); err == nil {
						blksize = v
					}
				}
			}
			last = ack(0)
		case 3: // DATA
			block := binary.BigEndian.Uint16(buf[2:])
			if block != next {
				// A duplicate: our ACK was lost or late; say again what we have.
				if block == next-1 {
					c.WriteToUDPAddrPort(ack(block), peer)
				}
				continue
			}
			total += int64(n - 4)
			last = ack(block)
			next++
			if n-4 < blksize {
				_, err := c.WriteToUDPAddrPort(last, peer)
				return total, err
			}
		case 5: // ERROR
			return total, fmt.Errorf("server error %d: %s", binary.BigEndian.Uint16(buf[2:]), splitZ(buf[4:n]))
		default:
			continue
		}
		if _, err := c.WriteToUDPAddrPort(last, peer); err != nil {
			return total, err
		}
	}
}

func splitZ(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		out = append(out, string(b[:i]))
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}

// benchHTTP downloads the payload n times at once from our server and returns the seconds
// until the last download completed.
func benchHTTP(ctx context.Context, bn *benchNet, n int, size int64) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, phaseBound)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DialContext: bn.client.DialContext, MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	url := "http://" + oursHTTP + "/" + payloadName
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				errs[i] = err
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			got, err := io.Copy(io.Discard, resp.Body)
			if err == nil && (resp.StatusCode != http.StatusOK || got != size) {
				err = fmt.Errorf("GET %s: %s, %d bytes, want %d", url, resp.Status, got, size)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return time.Since(start).Seconds(), errors.Join(errs...)
}
