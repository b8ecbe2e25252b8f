// Command coredns is CoreDNS (github.com/coredns/coredns, see go.mod) with only the plugins the
// devcluster's cluster DNS uses, registered the way CoreDNS's own main does (coredns.go imports
// core/plugin, whose zplugin.go imports every plugin of plugin.cfg, then calls coremain.Run),
// but with our short list:
//
//	reload bind ready health errors log cache template kubernetes
//
// There is deliberately no forward (nor grpc, etcd, or any other plugin that talks to another
// DNS server): names outside the cluster zones are answered locally by template. The Corefile
// is written by devcluster/dns.py.
package main

import (
	"fmt"
	"slices"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/template"
)

// directives are the plugins a Corefile may use, in the order they handle a query. The order
// must be CoreDNS's own (plugin.cfg), which init checks against the list compiled into
// dnsserver (core/dnsserver/zdirectives.go, generated from plugin.cfg).
var directives = []string{
	"reload",
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"cache",
	"template",
	"kubernetes",
}

// inOrder reports an error unless every name of ours is in upstream, in the same relative order.
func inOrder(ours, upstream []string) error {
	last := -1
	for _, name := range ours {
		i := slices.Index(upstream, name)
		if i < 0 {
			return fmt.Errorf("directive %q is not one of CoreDNS's", name)
		}
		if i <= last {
			return fmt.Errorf("directive %q is out of CoreDNS's plugin.cfg order", name)
		}
		last = i
	}
	return nil
}

func init() {
	if err := inOrder(directives, dnsserver.Directives); err != nil {
		panic(err)
	}
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
