package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sys/unix"
)

// A stdio server with network = "none" or a list runs in a user and a
// network namespace of its own (unprivileged: its user ids are mapped to
// Hive's own), where only its loopback exists. The namespaces are made by
// clone(2) as Hive starts this same binary as a shim (Init, told by
// shimEnv); the shim brings the loopback up, and for a list listens on
// 127.0.0.1:PORT inside, hands that socket to Hive over file descriptor 3
// (SCM_RIGHTS) and sets the proxy variables to it; then it execs the
// server in its place, so that the server is the process Hive started:
// its stdio, its process group, its death signal (SIGKILL when Hive dies).
// An exec that fails is reported on fd 3 too; one that succeeds closes it.
//
// Hive's [proxy] serves that socket from Hive's side, on Hive's network.
// No path on the filesystem leads to it: another process of the machine
// (another server among them) cannot use a server's list.
const (
	shimEnv = "HIVE_MCP_NETNS"
	shimFD  = 3
)

// shimConfig is what Hive tells the shim.
type shimConfig struct {
	Path  string   // the server's program
	Argv  []string // its arguments, the first its name
	Env   []string // its environment
	Proxy bool     // listen for Hive's proxy and set the proxy variables
}

// shimMsg is the shim's report on fd 3.
type shimMsg struct {
	Ready bool   `json:"ready,omitempty"` // the namespace is ready: the exec comes next
	Port  int    `json:"port,omitempty"`  // the proxy's socket, which the message carries
	Error string `json:"error,omitempty"` // the shim failed
}

// Init turns this process into the network shim of an MCP server when Hive
// started it as one, and never returns then; otherwise it does nothing.
// Call it first thing in main, and in TestMain of every package whose
// tests start servers with network = "none" or a list.
func Init() {
	v, ok := os.LookupEnv(shimEnv)
	if !ok {
		return
	}
	// Capabilities are a thread's: the one that drops them must exec.
	runtime.LockOSThread()
	unix.CloseOnExec(shimFD)
	fail := func(err error) {
		b, _ := json.Marshal(shimMsg{Error: err.Error()})
		unix.Write(shimFD, b)
		fmt.Fprintln(os.Stderr, "hive: mcp network namespace:", err)
		os.Exit(125)
	}
	var cfg shimConfig
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		fail(fmt.Errorf("read the configuration: %w", err))
	}
	if err := loopbackUp(); err != nil {
		fail(fmt.Errorf("bring the loopback up: %w", err))
	}
	env := cfg.Env
	if err := dropCaps(); err != nil {
		fail(fmt.Errorf("drop the capabilities: %w", err))
	}
	if cfg.Proxy {
		port, err := sendListener()
		if err != nil {
			fail(fmt.Errorf("listen for the proxy: %w", err))
		}
		url := "http://127.0.0.1:" + strconv.Itoa(port)
		for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"} {
			env = append(env, k+"="+url, strings.ToLower(k)+"="+url)
		}
	} else {
		b, _ := json.Marshal(shimMsg{Ready: true})
		if _, err := unix.Write(shimFD, b); err != nil {
			fail(fmt.Errorf("report: %w", err))
		}
	}
	err := syscall.Exec(cfg.Path, cfg.Argv, env)
	fail(fmt.Errorf("start %s: %w", cfg.Path, err))
}

// loopbackUp sets the namespace's lo up (a new namespace's is down).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// sendListener listens on 127.0.0.1 of the namespace and sends the socket
// to Hive; it returns the port.
func sendListener() (int, error) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	f, err := ln.File()
	if err != nil {
		return 0, err
	}
	defer f.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	b, _ := json.Marshal(shimMsg{Ready: true, Port: port})
	return port, unix.Sendmsg(shimFD, b, unix.UnixRights(int(f.Fd())), nil, 0)
}

// dropCaps leaves the server none of the capabilities the shim was given
// in its namespace (CAP_NET_ADMIN, ambient, for lo). A shim running as
// root in its namespace (Hive is root) keeps root's, over the namespace
// only.
func dropCaps() error {
	if os.Geteuid() == 0 {
		return nil
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return err
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	for i := range data {
		data[i].Inheritable = 0
	}
	return unix.Capset(&hdr, &data[0])
}

// isolate makes the session's command start in namespaces of its own,
// through the shim, and returns the transport that starts it and waits
// for the shim's report; for a list, it starts the session's proxy.
func (s *server) isolate(sess *session, ct *sdk.CommandTransport) (sdk.Transport, error) {
	cmd := ct.Command
	if cmd.Err != nil {
		return nil, cmd.Err
	}
	dests, err := parseDests(s.cfg.Network.Allow)
	if err != nil {
		return nil, err // validated: unreachable
	}
	cfg, err := json.Marshal(shimConfig{Path: cmd.Path, Argv: cmd.Args, Env: cmd.Env, Proxy: s.cfg.Network.Mode == NetworkAllow})
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "mcp-shim"), os.NewFile(uintptr(fds[1]), "mcp-shim")
	cmd.Path, cmd.Args = "/proc/self/exe", []string{"hive-mcp-netns"}
	cmd.Env = []string{shimEnv + "=" + string(cfg), "GORACE=atexit_sleep_ms=0"}
	cmd.ExtraFiles = []*os.File{theirs}
	uid, gid := os.Geteuid(), os.Getegid()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:     true,
		Pdeathsig:   syscall.SIGKILL,
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		AmbientCaps: []uintptr{unix.CAP_NET_ADMIN},
	}
	return &nsTransport{s: s, sess: sess, inner: ct, mine: mine, theirs: theirs, dests: dests}, nil
}

// nsTransport starts a server through the shim.
type nsTransport struct {
	s            *server
	sess         *session
	inner        *sdk.CommandTransport
	mine, theirs *os.File // the two ends of the shim's fd 3
	dests        dests
}

func (t *nsTransport) Connect(ctx context.Context) (sdk.Connection, error) {
	conn, err := t.inner.Connect(ctx)
	t.theirs.Close()
	if err != nil {
		t.mine.Close()
		if t.inner.Command.Process == nil {
			return nil, namespaceError(t.s.cfg, err)
		}
		return nil, err
	}
	ln, err := t.await(ctx)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if ln != nil {
		t.sess.proxy = newProxy(ln, t.s.cfg.Name, t.dests, t.s.m.log, t.s.m.redact, t.s.net)
	}
	return conn, nil
}

// await reads the shim's report until the exec closes fd 3, and returns
// the proxy's socket if it sent one.
func (t *nsTransport) await(ctx context.Context) (ln net.Listener, err error) {
	defer func() {
		if err != nil && ln != nil {
			ln.Close()
			ln = nil
		}
	}()
	c, err := net.FileConn(t.mine)
	t.mine.Close()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { uc.SetReadDeadline(time.Now()) })
	defer stop()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
	ready := false
	for {
		n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			l, ferr := receiveListener(oob[:oobn])
			if ferr != nil {
				return ln, ferr
			}
			if ln == nil {
				ln = l
			} else {
				l.Close()
			}
		}
		switch {
		case n > 0:
			var m shimMsg
			if err := json.Unmarshal(buf[:n], &m); err != nil {
				return ln, fmt.Errorf("the network shim said %q", buf[:n])
			}
			if m.Error != "" {
				return ln, fmt.Errorf("its network namespace: %s", m.Error)
			}
			ready = ready || m.Ready
		case err == nil || errors.Is(err, io.EOF):
			if !ready || t.s.cfg.Network.Mode == NetworkAllow && ln == nil {
				return ln, errors.New("the network shim did not start (does main call mcp.Init first?)")
			}
			return ln, nil // the exec closed fd 3
		case ctx.Err() != nil:
			return ln, ctx.Err()
		default:
			return ln, fmt.Errorf("read the network shim's report: %w", err)
		}
	}
}

// receiveListener turns the socket a message carries into a listener.
func receiveListener(oob []byte) (net.Listener, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if f, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	if len(fds) == 0 {
		return nil, errors.New("the network shim sent no socket")
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	unix.CloseOnExec(fds[0])
	f := os.NewFile(uintptr(fds[0]), "mcp-proxy")
	defer f.Close()
	return net.FileListener(f)
}

// namespaceError explains a failure to create the namespaces, which
// network = "none" or a list needs: Hive never falls back to the host's
// network.
func namespaceError(cfg ServerConfig, err error) error {
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b))
	}
	why := "the kernel refuses to create them"
	switch {
	case read("/proc/sys/user/max_user_namespaces") == "0":
		why = "user namespaces are disabled (sysctl user.max_user_namespaces=0)"
	case read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
		why = "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0)"
	case read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
		why = "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=1)"
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENOSYS):
		why = "creating them is denied (a container without CAP_SYS_ADMIN, or a seccomp profile that blocks clone)"
	}
	return fmt.Errorf("network = %s needs a user and a network namespace of its own, and %s: %w; allow them, or give [mcp.%s] network = \"host\" to run it on the host's network",
		cfg.Network, why, err, cfg.Name)
}
