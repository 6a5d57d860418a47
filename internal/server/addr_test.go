package server

import "testing"

func TestCheckAddr(t *testing.T) {
	cases := []struct {
		addr          string
		tls, insecure bool
		ok            bool
	}{
		{"127.0.0.1:7070", false, false, true},
		{"localhost:7070", false, false, true},
		{"[::1]:7070", false, false, true},
		{"127.0.0.2:0", false, false, true},
		{"[::ffff:127.0.0.1]:80", false, false, true},
		{"0.0.0.0:7070", false, false, false},
		{":7070", false, false, false},
		{"192.168.1.5:7070", false, false, false},
		{"[::]:7070", false, false, false},
		{"example.com:7070", false, false, false},
		{"0.0.0.0:7070", true, false, true},
		{"0.0.0.0:7070", false, true, true},
		{"nonsense", false, false, false},
		{"nonsense", true, true, false},
	}
	for _, c := range cases {
		err := CheckAddr(c.addr, c.tls, c.insecure)
		if (err == nil) != c.ok {
			t.Errorf("CheckAddr(%q, tls=%v, insecure=%v) = %v, want ok=%v", c.addr, c.tls, c.insecure, err, c.ok)
		}
	}
}
