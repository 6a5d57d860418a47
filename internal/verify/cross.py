# The cross-check driver (see cross.go). It reads cross.json:
#   {"tests": str, "candidates": [str], "probes": [str] | null,
#    "max_probes": int, "limit": int, "width": int}
# and prints one JSON object:
#   {"probes": [str], "results": [{"tests": bool, "error": str, "outs": [str]}]}
#
# Without given probes, they are derived from the tests: each call to a
# function that the first candidate defines (f(1, [2, 3]) in
# "assert f(1, [2, 3]) == 4", or Solution().f(1) for a class), then the
# same call with each literal argument replaced in turn by nearby values
# of its type. Each candidate runs in a forked child of its own process
# group, width at a time, each with limit seconds of CPU for its code,
# the tests and every probe; results are normalised (floats to 9 significant
# digits, whole floats as ints, sets sorted, iterators listed, object
# addresses dropped) and compared by repr.
import ast, builtins, itertools, json, os, re, resource, select, signal, sys, time

req = json.load(open("cross.json"))
tests, cands = req["tests"], req["candidates"]
max_probes, limit, width = req.get("max_probes", 40), req.get("limit", 5), req.get("width", 2)


def defined(src):
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return set()
    names = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, ast.Assign):
            names.update(t.id for t in n.targets if isinstance(t, ast.Name))
    return names


def variants(v):
    if isinstance(v, bool):
        return [not v]
    if isinstance(v, int):
        return [v + 1, v - 1, 0, -v, 2 * v + 7]
    if isinstance(v, float):
        return [v + 0.5, -v, 0.0, v * 2]
    if isinstance(v, str):
        return ["", v[::-1], v + v[:1], v.upper(), v[1:], v + " " + v]
    if isinstance(v, list):
        out = [[], v[::-1], v + v[:1], v[1:]]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            out += [sorted(v), [x + 1 for x in v], [-x for x in v]]
        return out
    if isinstance(v, tuple):
        return [v[::-1]]
    if isinstance(v, dict):
        return [{}]
    return []


def derive(tests, names):
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return []
    seen, out = set(), []

    def add(p):
        if p not in seen and len(out) < max_probes:
            seen.add(p)
            out.append(p)

    def probe(c):
        # f(args), or C().m(args) for a class C the candidate defines.
        if c.keywords or any(isinstance(a, ast.Starred) for a in c.args):
            return None
        f = c.func
        if isinstance(f, ast.Name) and f.id in names:
            return f.id
        if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Call) and not f.value.args
                and not f.value.keywords and isinstance(f.value.func, ast.Name) and f.value.func.id in names):
            return "%s().%s" % (f.value.func.id, f.attr)
        return None

    calls = [(c, probe(c)) for c in ast.walk(tree) if isinstance(c, ast.Call)]
    calls = [(c, head) for c, head in calls if head]
    for c, head in calls:
        add(ast.unparse(c))
    for c, head in calls:
        try:
            vals = [ast.literal_eval(a) for a in c.args]
        except (ValueError, SyntaxError, TypeError):
            continue
        for i, v in enumerate(vals):
            for w in variants(v):
                args = vals[:i] + [w] + vals[i + 1:]
                add("%s(%s)" % (head, ", ".join(repr(a) for a in args)))
    return out


address = re.compile(r" at 0x[0-9a-fA-F]+")


def norm(v, depth=0):
    if depth > 20:
        return v
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, float):
        if v == v and v not in (float("inf"), float("-inf")) and v == int(v):
            return int(v)
        return float("%.9g" % v)
    if isinstance(v, (list, tuple)):
        items = [norm(x, depth + 1) for x in v]
        try:
            return type(v)(items)
        except TypeError:
            return tuple(items)
    if isinstance(v, (set, frozenset)):
        return sorted((norm(x, depth + 1) for x in v), key=repr)
    if isinstance(v, dict):
        return sorted(((repr(norm(k, depth + 1)), norm(x, depth + 1)) for k, x in v.items()), key=lambda kv: kv[0])
    if hasattr(v, "__next__") and hasattr(v, "__iter__"):
        return ["iterator"] + [norm(x, depth + 1) for x in itertools.islice(v, 1000)]
    return v


class Timeout(Exception):
    pass


def alarm(sig, frame):
    raise Timeout()


def run(src, probes):
    # Time is CPU time (ITIMER_PROF), so that a busy machine does not cut
    # off a slow but right answer; the parent's wall deadline catches the
    # ones that sleep.
    res = {"tests": False, "error": "", "outs": []}
    g = {"__name__": "candidate"}
    start = time.process_time()
    try:
        signal.setitimer(signal.ITIMER_PROF, limit)
        exec(compile(src, "candidate", "exec"), g)
    except BaseException as e:
        res["error"] = "the code does not load: %s: %s" % (type(e).__name__, e)
        return res
    try:
        exec(compile(tests, "tests", "exec"), dict(g))
        res["tests"] = True
    except BaseException as e:
        res["error"] = "%s: %s" % (type(e).__name__, e)
    # Once a probe runs out of time, every later one is "time limit": the
    # few milliseconds a timer leaves over would otherwise decide, from one
    # run to the next, whether the next probes run or not.
    spent = False
    for p in probes:
        left = limit - (time.process_time() - start)
        if spent or left <= 0:
            res["outs"].append("time limit")
            continue
        try:
            signal.setitimer(signal.ITIMER_PROF, min(1.0, left))
            out = address.sub("", repr(norm(eval(p, dict(g)))))[:300]
        except Timeout:
            out, spent = "raises Timeout", True
        except BaseException as e:
            out = "raises " + type(e).__name__
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        res["outs"].append(out)
    return res


def child(src, probes, w):
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 0); os.dup2(fd, 1); os.dup2(fd, 2)
    # A guard for code that blocks the timer: limit+1 s of CPU in all.
    resource.setrlimit(resource.RLIMIT_CPU, (limit + 1, limit + 1))
    signal.signal(signal.SIGPROF, alarm)
    res = run(src, probes)
    os.write(w, json.dumps(res).encode())
    os._exit(0)


probes = req.get("probes")
if probes is None:
    probes = derive(tests, defined(cands[0]) - set(dir(builtins))) if cands else []

# Children run width at a time. A child's time is its CPU time, so that a
# busy machine does not cut off a slow but right answer, nor make two runs
# judge alike answers differently: a child is stopped only when its CPU time
# has not grown for idle seconds (asleep, blocked, or its pipe held by a
# descendant), or, as a last guard, after hard seconds of wall clock. Where
# /proc cannot be read, the wall clock decides (6*limit+1 s).
idle, hard = 2 * limit + 3, 15 * limit + 5
tick = os.sysconf("SC_CLK_TCK")


def cpu_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


results = [None] * len(cands)
running = {}  # read fd -> [index, pid, started, chunks, cpu, progressed]
queue = list(range(len(cands)))
while queue or running:
    while queue and len(running) < width:
        i = queue.pop(0)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)
            os.close(r)
            for other in running:
                os.close(other)
            child(cands[i], probes, w)
        os.close(w)
        now = time.monotonic()
        running[r] = [i, pid, now, [], -1.0, now]
    ready, _, _ = select.select(list(running), [], [], 0.2)
    now = time.monotonic()
    for r in list(running):
        i, pid, started, chunks, cpu, progressed = running[r]
        done = False
        if r in ready:
            b = os.read(r, 1 << 16)
            if b:
                chunks.append(b)
            else:
                done = True
        if not done:
            used = cpu_of(pid)
            if used is None:
                if now - started < 6 * limit + 1:
                    continue
            else:
                if used != cpu:
                    running[r][4], running[r][5] = used, now
                    progressed = now
                if now - progressed < idle and now - started < hard:
                    continue
        del running[r]
        os.close(r)
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        os.waitpid(pid, 0)
        try:
            results[i] = json.loads(b"".join(chunks)) if done else None
        except ValueError:
            results[i] = None
        if results[i] is None:
            results[i] = {"tests": False, "error": "stopped: it ran out of time or crashed the interpreter", "outs": []}
json.dump({"probes": probes, "results": results}, sys.stdout)
