// Command trainer plays a distributed training worker, for tests on devcluster's real nodes.
//
// It reads the environment a TrainingJob gives its workers, RANK (default 0), WORLD_SIZE
// (default 1), MASTER_ADDR (default localhost) and MASTER_PORT (default 29500), prints them,
// and then, in this order:
//
//	--allocate-mib M           allocate M MiB and write every page (past the container's memory
//	                           limit the kernel OOM-kills it); the memory stays referenced
//	--rendezvous               meet the other workers (default: on when WORLD_SIZE > 1): rank 0
//	                           listens on 0.0.0.0:MASTER_PORT until WORLD_SIZE-1 peers have sent
//	                           their rank, then answers each with the list of ranks; a peer dials
//	                           MASTER_ADDR:MASTER_PORT every 200ms (the headless Service's DNS
//	                           may lag). Every rank prints "rendezvous: N of W workers met"
//	--rendezvous-timeout D     give up after D (default 60s): exit 1 with the reason on stderr
//	--steps N                  run N steps (default 3), printing "step i/N"
//	--step-seconds S           each step takes S seconds (default 0.5)
//	--checkpoint-dir DIR       (env CHECKPOINT_DIR) write DIR/rank-R/step-i.ckpt after each step
//	--sleep D                  then sleep for the Go duration D (e.g. 1h: runs until stopped)
//	--print TEXT               print a line to stdout (repeatable)
//	--stderr TEXT              print a line to stderr (repeatable)
//	--termination-message TEXT write TEXT to /dev/termination-log, if it exists
//	--exit-code N              exit with N (default 0), saying "exiting with code N" on stderr
//
// On SIGTERM, at any moment, it writes DIR/rank-R/sigterm.ckpt (with --checkpoint-dir),
// prints "checkpoint saved on SIGTERM", does the --print, --stderr and
// --termination-message part and exits 143, well within a second.
package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type lines []string

func (l *lines) String() string     { return strings.Join(*l, "\n") }
func (l *lines) Set(s string) error { *l = append(*l, s); return nil }

var (
	rank, worldSize = envInt("RANK", 0), envInt("WORLD_SIZE", 1)
	masterAddr      = envStr("MASTER_ADDR", "localhost")
	masterPort      = envStr("MASTER_PORT", "29500")

	checkpointDir            = flag.String("checkpoint-dir", os.Getenv("CHECKPOINT_DIR"), "write checkpoints under `DIR`/rank-R/")
	terminationMsg           = flag.String("termination-message", "", "write `TEXT` to /dev/termination-log before exit")
	stdoutLines, stderrLines lines

	exitOnce sync.Mutex // locked by the first finish and never released: one exit only
	ballast  []byte     // the memory of --allocate-mib, kept referenced
)

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	n, err := strconv.Atoi(envStr(name, strconv.Itoa(def)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s is not a number: %v\n", name, err)
		os.Exit(2)
	}
	return n
}

func main() {
	doRendezvous := flag.Bool("rendezvous", worldSize > 1, "meet the other workers at MASTER_ADDR:MASTER_PORT")
	timeout := flag.Duration("rendezvous-timeout", 60*time.Second, "give up the rendezvous after `D`")
	steps := flag.Int("steps", 3, "number of steps")
	stepSeconds := flag.Float64("step-seconds", 0.5, "seconds per step")
	sleep := flag.Duration("sleep", 0, "sleep for `D` after the steps")
	exitCode := flag.Int("exit-code", 0, "exit with `N` at the end")
	allocateMiB := flag.Int("allocate-mib", 0, "allocate and touch `M` MiB")
	flag.Var(&stdoutLines, "print", "print `TEXT` to stdout before exit (repeatable)")
	flag.Var(&stderrLines, "stderr", "print `TEXT` to stderr before exit (repeatable)")
	flag.Parse()

	fmt.Printf("RANK=%d WORLD_SIZE=%d MASTER_ADDR=%s MASTER_PORT=%s\n", rank, worldSize, masterAddr, masterPort)
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	go func() {
		<-terms
		if *checkpointDir != "" {
			checkpoint("sigterm.ckpt", "sigterm")
			fmt.Println("checkpoint saved on SIGTERM")
		} else {
			fmt.Println("received SIGTERM")
		}
		finish(143)
	}()

	if *allocateMiB > 0 {
		ballast = make([]byte, *allocateMiB<<20)
		for i := 0; i < len(ballast); i += os.Getpagesize() {
			ballast[i] = 1
		}
		fmt.Printf("allocated %d MiB\n", *allocateMiB)
	}
	if *doRendezvous {
		met, err := rendezvous(*timeout)
		if err != nil {
			fmt.Fprintf(os.Stderr, "rendezvous failed: %v after %gs\n", err, timeout.Seconds())
			finish(1)
		}
		fmt.Printf("rendezvous: %d of %d workers met\n", met, worldSize)
	}
	for i := 1; i <= *steps; i++ {
		fmt.Printf("step %d/%d\n", i, *steps)
		time.Sleep(time.Duration(*stepSeconds * float64(time.Second)))
		checkpoint(fmt.Sprintf("step-%d.ckpt", i), fmt.Sprintf("step %d/%d", i, *steps))
	}
	time.Sleep(*sleep)
	finish(*exitCode)
}

// checkpoint writes a small text file under the rank's checkpoint directory, if there is one.
func checkpoint(name, what string) {
	if *checkpointDir == "" {
		return
	}
	dir := filepath.Join(*checkpointDir, fmt.Sprintf("rank-%d", rank))
	data := fmt.Sprintf("rank=%d world_size=%d %s at %s\n", rank, worldSize, what, time.Now().UTC().Format(time.RFC3339Nano))
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "checkpoint %s: %v\n", name, err)
	}
}

// finish prints the --print and --stderr lines, writes the termination message and exits.
func finish(code int) {
	exitOnce.Lock()
	for _, l := range stdoutLines {
		fmt.Println(l)
	}
	for _, l := range stderrLines {
		fmt.Fprintln(os.Stderr, l)
	}
	if *terminationMsg != "" {
		// O_CREATE is left out on purpose: outside Kubernetes there is no termination log.
		if f, err := os.OpenFile("/dev/termination-log", os.O_WRONLY|os.O_TRUNC, 0); err == nil {
			_, _ = f.WriteString(*terminationMsg)
			_ = f.Close()
		}
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "exiting with code %d\n", code)
	}
	os.Exit(code)
}

// rendezvous returns how many workers met (always worldSize on success).
func rendezvous(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	if rank == 0 {
		return serve(deadline)
	}
	addr := net.JoinHostPort(masterAddr, masterPort)
	for {
		met, err := join(addr, deadline)
		if err == nil {
			return met, nil
		}
		if time.Now().Add(200 * time.Millisecond).After(deadline) {
			return 0, fmt.Errorf("%s to %s", reason(err), addr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// join is one try of a peer: send our rank to rank 0 and read back the list of ranks.
func join(addr string, deadline time.Time) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	if _, err := fmt.Fprintf(conn, "%d\n", rank); err != nil {
		return 0, err
	}
	var reply string
	if _, err := fmt.Fscanln(conn, &reply); err != nil {
		return 0, err
	}
	return len(strings.Split(reply, ",")), nil
}

// serve is rank 0's side: collect every other rank, then send each the list of all ranks.
func serve(deadline time.Time) (int, error) {
	addr := net.JoinHostPort("0.0.0.0", masterPort)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	_ = ln.(*net.TCPListener).SetDeadline(deadline)
	peers := map[int]net.Conn{}
	for len(peers) < worldSize-1 {
		conn, err := ln.Accept()
		if err != nil {
			return 0, fmt.Errorf("%d of %d workers arrived at %s", len(peers)+1, worldSize, addr)
		}
		_ = conn.SetDeadline(deadline)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second)) // a stray client must not stall us
		var peer int
		if _, err := fmt.Fscanln(conn, &peer); err != nil || peer <= 0 || peer >= worldSize {
			conn.Close() // not one of our workers
			continue
		}
		if old, ok := peers[peer]; ok {
			old.Close() // the worker restarted: answer its new connection
		}
		peers[peer] = conn
	}
	ranks := []string{"0"}
	for _, r := range slices.Sorted(maps.Keys(peers)) {
		ranks = append(ranks, strconv.Itoa(r))
	}
	for _, conn := range peers {
		_, _ = fmt.Fprintln(conn, strings.Join(ranks, ","))
		conn.Close()
	}
	return len(ranks), nil
}

// reason is the short cause of a failed dial: "connection refused", "no such host", ...
func reason(err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dnsErr):
		return dnsErr.Err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "connection timed out"
	}
	return err.Error()
}
