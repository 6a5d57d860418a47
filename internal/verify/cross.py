# The cross-check driver (see cross.go). It reads cross.json:
#   {"tests": str, "candidates": [str], "max_probes": int, "limit": int}
# and prints one JSON object:
#   {"probes": [str], "results": [{"tests": bool, "error": str, "outs": [str]}]}
#
# Probes are calls to the functions that the first candidate defines,
# taken from the tests (f(1, [2, 3]) in "assert f(1, [2, 3]) == 4") and
# varied: each literal argument is replaced in turn by nearby values of
# its type. Each candidate runs in a forked child: its code, then the
# tests, then every probe, each result normalised (floats to 9
# significant digits, sets sorted) and printed with repr.
import ast, builtins, json, os, resource, signal, sys, time

req = json.load(open("cross.json"))
tests, cands = req["tests"], req["candidates"]
max_probes, limit = req.get("max_probes", 40), req.get("limit", 5)


def defined(src):
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return set()
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


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


def probes(tests, names):
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return []
    seen, out = set(), []

    def add(p):
        if p not in seen and len(out) < max_probes:
            seen.add(p)
            out.append(p)

    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id in names and not n.keywords and not any(isinstance(a, ast.Starred) for a in n.args)]
    # The tests' own calls first, then their variants.
    for c in calls:
        add(ast.unparse(c))
    for c in calls:
        try:
            vals = [ast.literal_eval(a) for a in c.args]
        except (ValueError, SyntaxError, TypeError):
            continue
        for i, v in enumerate(vals):
            for w in variants(v):
                args = vals[:i] + [w] + vals[i + 1:]
                add("%s(%s)" % (c.func.id, ", ".join(repr(a) for a in args)))
    return out


def norm(v, depth=0):
    if depth > 20:
        return v
    if isinstance(v, float):
        return float("%.9g" % v)
    if isinstance(v, (list, tuple)):
        return type(v)(norm(x, depth + 1) for x in v)
    if isinstance(v, (set, frozenset)):
        return sorted((norm(x, depth + 1) for x in v), key=repr)
    if isinstance(v, dict):
        return sorted(((repr(k), norm(x, depth + 1)) for k, x in v.items()), key=lambda kv: kv[0])
    return v


def run(src, probes):
    res = {"tests": False, "error": "", "outs": []}
    g = {"__name__": "candidate"}
    start = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, limit)
        exec(compile(src, "candidate", "exec"), g)
    except BaseException as e:
        res["error"] = "the code does not load: %s: %s" % (type(e).__name__, e)
        return res
    try:
        exec(compile(tests, "tests", "exec"), dict(g))
        res["tests"] = True
    except BaseException as e:
        res["error"] = "%s: %s" % (type(e).__name__, e)
    for p in probes:
        left = limit - (time.monotonic() - start)
        if left <= 0:
            res["outs"].append("time limit")
            continue
        try:
            signal.setitimer(signal.ITIMER_REAL, min(1.0, left))
            out = repr(norm(eval(p, dict(g))))[:300]
        except BaseException as e:
            out = "raises " + type(e).__name__
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        res["outs"].append(out)
    return res


class Timeout(Exception):
    pass


def alarm(sig, frame):
    raise Timeout()


names = defined(cands[0]) - set(dir(builtins)) if cands else set()
ps = probes(tests, names)
children = []
for src in cands:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        fd = os.open(os.devnull, os.O_RDWR)
        os.dup2(fd, 0); os.dup2(fd, 1); os.dup2(fd, 2)
        # A guard for code that blocks the timer: limit+1 s of CPU in all.
        resource.setrlimit(resource.RLIMIT_CPU, (limit + 1, limit + 1))
        signal.signal(signal.SIGALRM, alarm)
        res = run(src, ps)
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    children.append((pid, r))

results = []
for pid, r in children:
    chunks = []
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    try:
        results.append(json.loads(b"".join(chunks)))
    except ValueError:
        results.append({"tests": False, "error": "stopped: it ran out of time or crashed the interpreter", "outs": []})
json.dump({"probes": ps, "results": results}, sys.stdout)
