// Command pause is the process of a pod sandbox on devcluster's real nodes: it holds the
// pod's namespaces open and does nothing until SIGINT or SIGTERM, then exits 0. As PID 1 of a
// pod that shares its process namespace it also reaps orphaned children (SIGCHLD, then wait4
// until none is left).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 && err != syscall.EINTR {
				break
			}
		}
	}
}
