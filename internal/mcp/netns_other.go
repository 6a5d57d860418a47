//go:build !linux

package mcp

import (
	"fmt"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Init does nothing: network namespaces are Linux's.
func Init() {}

// isolate fails: network = "none" or a list needs Linux's network
// namespaces, and Hive never falls back to the host's network.
func (s *server) isolate(*session, *sdk.CommandTransport) (sdk.Transport, error) {
	return nil, fmt.Errorf("network = %s needs Linux (a network namespace of its own); on this system give [mcp.%s] network = \"host\"", s.cfg.Network, s.cfg.Name)
}
