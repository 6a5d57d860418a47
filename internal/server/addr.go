package server

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// CheckAddr refuses to listen on addr beyond this machine without TLS
// (tls) or an explicit opt-in (insecureRemote): the token would cross the
// network in clear. An empty host (":7070") listens on every interface,
// so it counts as remote.
func CheckAddr(addr string, tls, insecureRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %v (give HOST:PORT, like 127.0.0.1:7070)", addr, err)
	}
	if Loopback(host) || tls || insecureRemote {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s without TLS: the token would cross the network in clear; give --tls-cert and --tls-key, or --insecure-remote if a proxy terminates TLS", addr)
}

// Loopback reports whether host names only this machine.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}
