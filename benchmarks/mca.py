#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Static analysis of the GEMM micro-kernels with llvm-mca, for CPUs we cannot run on.

    python benchmarks/mca.py                     # all kernels, all CPU models (a few seconds once cached)
    python benchmarks/mca.py --cpus skylake-avx512,znver4 --kinds packed,rows
    python benchmarks/mca.py --mca llvm-mca-16   # a given llvm-mca (default: the newest one on PATH)
    python benchmarks/mca.py --all               # also list every FMA loop found, identified or not

It compiles csrc/kernels/gemm_avx2.cpp and gemm_avx512.cpp to assembly with the library's own flags
(read from CMakeLists.txt), finds the branch-free innermost loops that hold the FMA-heavy kernel bodies
(the k loops of the packed micro-kernel, of the micro-kernel that reads rows of A in place, used by the
tall path, and of the direct dot and broadcast kernels), infers each loop's register tile from its
instructions (accumulators, broadcasts, vector loads) and checks it against the kernel configuration,
then runs each loop through llvm-mca for several CPU models and prints predicted cycles per iteration,
flops per cycle, the fraction of the CPU's FMA peak and what llvm-mca says limits the loop.

llvm-mca models only the core: every load hits L1, no packing, no frequency changes; and its answer is
only as good as its scheduling model, which differs between LLVM versions (the "model" table at the top
shows what the model in use assumes for the instructions that matter). Needs llvm-mca (Debian/Ubuntu:
`apt install llvm-16`, or llvm-19, whose models include Sapphire Rapids) and the C++ compiler that
builds the library (GCC or Clang; $CXX). The assembly is cached under $XDG_CACHE_HOME/deltaprop-mca,
keyed by the sources, flags and compiler. Results and their reading: benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# CPU models: (llvm name, label, levels it can run, float32 flops per cycle of its FMA units, why).
CPUS = [
    ("haswell", "Haswell", ("avx2",), 32, "2 x 256-bit FMA (ports 0, 1)"),
    ("skylake", "Skylake client", ("avx2",), 32, "2 x 256-bit FMA (ports 0, 1)"),
    ("skylake-avx512", "Skylake-SP", ("avx2", "avx512"), 64,
     "2 x 512-bit FMA on Gold 6xxx, Platinum; 1 on Silver, Bronze, most Gold 5xxx: 32"),
    ("icelake-server", "Ice Lake-SP", ("avx2", "avx512"), 64, "2 x 512-bit FMA (ports 0+1 fused, 5)"),
    ("sapphirerapids", "Sapphire Rapids", ("avx2", "avx512"), 64, "2 x 512-bit FMA (ports 0+1 fused, 5)"),
    ("znver3", "Zen 3", ("avx2",), 32, "2 x 256-bit FMA pipes (FP0, FP1)"),
    ("znver4", "Zen 4", ("avx2", "avx512"), 32,
     "2 x 256-bit FMA pipes; a 512-bit FMA takes both: as AVX2"),
]
KINDS = ("packed", "rows", "tall1", "dot", "dot1", "axpy", "axpy1")
KIND_TEXT = {
    "packed": "micro, packed A",
    "rows": "micro, rows of A in place",
    "tall1": "tall, one vector wide",
    "dot": "direct dot",
    "dot1": "direct dot, batch 1",
    "axpy": "direct broadcast",
    "axpy1": "direct broadcast, batch 1",
}


def die(msg: str) -> None:
    print(f"mca.py: {msg}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------------------------------------------
# Tools and flags

def find_mca(wanted: str | None) -> str:
    if wanted:
        path = shutil.which(wanted)
        if not path:
            die(f"{wanted} not found")
        return path
    if os.environ.get("LLVM_MCA"):
        return find_mca(os.environ["LLVM_MCA"])
    found = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        for p in glob.glob(os.path.join(d, "llvm-mca-*")):
            m = re.fullmatch(r"llvm-mca-(\d+)", os.path.basename(p))
            if m and os.access(p, os.X_OK):
                found.append((int(m.group(1)), p))
    if found:
        return max(found)[1]
    if shutil.which("llvm-mca"):
        return shutil.which("llvm-mca")
    die("llvm-mca not found. Install it (Debian/Ubuntu: `apt install llvm-16`, or llvm-19 for newer CPU "
        "models) or name one with --mca.")
    return ""


def mca_version(mca: str) -> str:
    out = subprocess.run([mca, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"LLVM version (\S+)", out)
    return m.group(1) if m else "?"


def library_flags() -> dict[str, list[str]]:
    """Per-file compile flags as CMakeLists.txt gives them to the library (Release build)."""
    text = open(os.path.join(ROOT, "CMakeLists.txt")).read()
    common = ["-std=c++17", "-O3", "-DNDEBUG", "-fPIC", "-fvisibility=hidden",
              "-I" + os.path.join(ROOT, "csrc", "include"), "-I" + os.path.join(ROOT, "csrc"),
              "-DDELTAPROP_BUILDING", "-DDP_X86=1"]
    for m in re.finditer(r"target_compile_options\(deltaprop PRIVATE ([^)]*)\)", text):
        for tok in re.findall(r"-f[\w=-]+", m.group(1)):
            if tok not in common:
                common.append(tok)
    if "-ffp-contract=off" not in common:
        die("CMakeLists.txt: no -ffp-contract=off in target_compile_options(deltaprop ...): format changed?")
    flags = {}
    for level in ("avx2", "avx512"):
        m = re.search(r'_%s\\\\\.cpp\$"\)(.*?)COMPILE_OPTIONS\s*"([^"]+)"' % level, text, re.S)
        if not m:
            die(f"CMakeLists.txt: no COMPILE_OPTIONS for *_{level}.cpp: format changed?")
        flags[level] = common + m.group(2).split(";")
    return flags


def compile_asm(cxx: str, flags: dict[str, list[str]], no_cache: bool) -> dict[str, str]:
    """Assembly text of gemm_<level>.cpp for each level (cached)."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    h = hashlib.sha256(version.encode())
    for pat in ("csrc/kernels/*.h", "csrc/kernels/gemm_avx*.cpp", "csrc/include/deltaprop/*.h"):
        for p in sorted(glob.glob(os.path.join(ROOT, pat))):
            h.update(p.encode() + open(p, "rb").read())
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "deltaprop-mca")
    os.makedirs(cache, exist_ok=True)
    procs, paths = {}, {}
    for level, fl in flags.items():
        key = hashlib.sha256(h.digest() + " ".join(fl).encode()).hexdigest()[:16]
        paths[level] = os.path.join(cache, f"gemm_{level}-{key}.s")
        if no_cache or not os.path.exists(paths[level]):
            src = os.path.join(ROOT, "csrc", "kernels", f"gemm_{level}.cpp")
            procs[level] = subprocess.Popen([cxx, *fl, "-S", "-o", paths[level] + ".tmp", src],
                                            stderr=subprocess.PIPE, text=True)
    for level, p in procs.items():
        err = p.communicate()[1]
        if p.returncode:
            die(f"compiling gemm_{level}.cpp failed:\n{err}")
        os.replace(paths[level] + ".tmp", paths[level])
    return {level: open(p).read() for level, p in paths.items()}


# ---------------------------------------------------------------------------------------------------
# Kernel configuration (gemm_avx2.cpp / gemm_avx512.cpp): Cfg structs and vector widths

def kernel_configs(level: str) -> dict[str, dict[str, int]]:
    text = open(os.path.join(ROOT, "csrc", "kernels", f"gemm_{level}.cpp")).read()
    widths = {m.group(1): int(m.group(2)) for m in
              re.finditer(r"struct (\w+) \{\s*using T = \w+;\s*using V = \w+;\s*static constexpr int W = (\d+);", text)}
    cfgs = {}
    for m in re.finditer(r"struct (\w+) \{\s*using S = (\w+);(.*?)\n\};", text, re.S):
        vals = {k: int(v) for k, v in re.findall(r"\b([A-Z][A-Z0-9_]*)\s*=\s*(\d+)\b", m.group(3))}
        vals["W"] = widths[m.group(2)]
        dtype = "f64" if "64" in m.group(1) else "f32"
        cfgs[dtype] = vals
    if set(cfgs) != {"f32", "f64"} or not all("MR" in c and "NV" in c for c in cfgs.values()):
        die(f"gemm_{level}.cpp: could not read the kernel configurations (MR, NV, ...)")
    return cfgs


# ---------------------------------------------------------------------------------------------------
# Loops in the assembly

@dataclass
class Loop:
    level: str
    func: str            # demangled enclosing function
    body: list[str]      # instructions of one iteration, the back branch last
    kind: str = ""
    dtype: str = ""
    shape: str = "?"     # rows x vectors (broadcast kernels) or rows x columns (dot)
    steps: int = 1       # k steps per iteration (unrolling)
    fmas: int = 0
    flops: int = 0
    acc: int = 0
    loads: int = 0       # loads of any kind per iteration (broadcasts, vectors, reloads)
    bcasts: int = 0
    reloads: int = 0     # general registers reloaded from the stack (spills)
    vspills: int = 0     # vector registers stored to or loaded from the stack
    note: str = ""
    results: dict = field(default_factory=dict)


def find_loops(asm: str, level: str) -> list[Loop]:
    """Branch-free self loops: a label, straight-line code, a conditional jump back to the label."""
    loops, func, open_labels, body = [], "", {}, []
    for raw in asm.split("\n"):
        line = raw.split("#", 1)[0].rstrip()
        m = re.match(r"^([A-Za-z_.$][\w.$]*):", line)
        if m:
            name = m.group(1)
            if not name.startswith(".L"):
                func, open_labels, body = name, {}, []
            open_labels[name] = len(body)
            continue
        s = line.strip()
        if not s or s.startswith("."):
            continue
        body.append(s)
        j = re.match(r"^(j\w+|ret\w*|call\w*)\b\s*(\S*)", s)
        if j:
            target = j.group(2)
            if j.group(1).startswith("j") and j.group(1) != "jmp" and target in open_labels:
                loops.append((func, body[open_labels[target]:]))
            if not j.group(1).startswith("call"):
                open_labels, body = {}, []
    names = sorted({f for f, _ in loops})
    dem = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.split("\n")
    dem = dict(zip(names, dem)) if len(dem) >= len(names) else {n: n for n in names}
    out = []
    for f, b in loops:
        d = re.sub(r"deltaprop::kernels::detail::|\(anonymous namespace\)::", "", dem.get(f, f))
        out.append(Loop(level=level, func=d, body=b))
    return out


def analyse(loop: Loop) -> None:
    fm, nvec, addrs, baddrs = [], 0, set(), set()
    lanes_of = {"zmm": 16, "ymm": 8, "xmm": 4}
    for s in loop.body:
        op, _, args = s.partition("\t")
        op = op.strip()
        has_mem = "(" in args
        stack = bool(re.search(r"\(%r[sb]p\)", args))
        if op.startswith(("vfmadd", "vfnmadd", "vfmsub", "vfnmsub")):
            regs = re.findall(r"%([xyz]mm)\d+", args)
            lanes = lanes_of[regs[-1]] // (2 if op.endswith("pd") else 1)
            if op.endswith(("ss", "sd")):
                lanes = 1
            fm.append((args.split(",")[-1].strip(), lanes))
            if has_mem:
                loop.loads += 1
                loop.bcasts += "{1to" in args
                nvec += "{1to" not in args
                (addrs if "{1to" not in args else baddrs).add(args.split(",")[0].split("{")[0])
        elif has_mem and (op.startswith("vbroadcast") or op.startswith("vmov") or op.startswith("vmask")):
            src_is_mem = args.index("(") < args.rindex("%")  # AT&T: source first
            if op.startswith("vbroadcast"):
                loop.loads += 1
                loop.bcasts += 1
                baddrs.add(args.split(",")[0])
            elif src_is_mem:
                loop.loads += 1
                nvec += not stack
                if not stack:
                    addrs.add(args.split(",")[0])
            if stack and re.search(r"%[xyz]mm", args):
                loop.vspills += 1
        elif has_mem and op.startswith("mov") and not op.startswith("movs") or op.startswith("cmp") and has_mem:
            src_is_mem = args.index("(") < args.index(",") if "," in args else True
            if src_is_mem:
                loop.loads += 1
                loop.reloads += stack
    loop.fmas = len(fm)
    loop.flops = sum(2 * lanes for _, lanes in fm)
    loop.acc = len({r for r, _ in fm})
    if not loop.fmas or loop.fmas % loop.acc:
        return
    loop.steps = loop.fmas // loop.acc
    nb, nv = loop.bcasts, nvec
    if nb:
        if loop.steps == 1:  # each address read once per k step (a folded load may repeat)
            rows, vecs = len(baddrs), len(addrs)
        else:
            rows, vecs = nb // loop.steps, nv // loop.steps
        if vecs and rows * vecs == loop.acc:
            loop.shape = f"{rows}x{vecs}"
    else:  # dot: IB rows of A and JB rows of B per step (each address read once), IB * JB accumulators
        per = len(addrs) if loop.steps == 1 else nv // loop.steps
        for ib in range(1, per):
            if ib * (per - ib) == loop.acc:
                loop.shape = f"{ib}x{per - ib}"
                break


def classify(loops: list[Loop], cfgs: dict[str, dict[str, int]]) -> list[Loop]:
    """The loop of each kernel kind at full tile size, per dtype; notes where the name and the
    instructions disagree. Returns the chosen loops (others keep kind '')."""
    chosen = []
    for dtype, c in cfgs.items():
        # the kernel's own (out-of-line) instance, or the driver it is inlined into
        s, d = f"F{dtype[1:]}x{c['W']}", dtype.upper()
        want = {
            "packed": (rf"^void micro<{s}, {c['MR']}, {c['NV']}, false, false>", f"{c['MR']}x{c['NV']}"),
            "rows": (rf"^void micro<{s}, {c['MR']}, {c['NV']}, true, false>", f"{c['MR']}x{c['NV']}"),
            "tall1": (rf"^(gemm_tall<\w+{d}\b|void micro<{s}, {c['MR']}, 1, true, false>)", f"{c['MR']}x1"),
            "dot": (rf"^(gemm_dot<\w+{d}\b|void dot_block<{s}, )", f"{c['DOT_IB']}x{c['DOT_JB']}"),
            "dot1": (rf"^(gemm_dot<\w+{d}\b|void dot_block<{s}, )", f"1x{c['DOT1_JB']}"),
            "axpy": (rf"^(gemm_axpy<\w+{d}\b|void axpy_block<{s}, )", f"{c['AXPY_IB']}x{c['AXPY_JV']}"),
            "axpy1": (rf"^(gemm_axpy<\w+{d}\b|void axpy_block<{s}, )", f"1x{c['AXPY1_JV']}"),
        }
        for kind, (fpat, shape) in want.items():
            cand = [lp for lp in loops if re.search(fpat, lp.func) and lp.shape == shape and not lp.kind]
            if kind.startswith(("dot", "axpy")):
                # several copies (with_const); the unmasked one of full width: fewest instructions
                cand.sort(key=lambda lp: (lp.loads / lp.steps, len(lp.body) / lp.steps))
            else:
                cand.sort(key=lambda lp: -lp.fmas)  # the unrolled main loop
            if not cand:
                lp = Loop(level="", func="", body=[], kind=kind, dtype=dtype, shape=shape,
                          note="not identified in the assembly")
                chosen.append(lp)
                continue
            lp = cand[0]
            lp.kind, lp.dtype = kind, dtype
            expect_acc = eval(shape.replace("x", "*"))
            if lp.acc != expect_acc:
                lp.note = f"{lp.acc} accumulators, {expect_acc} expected"
            chosen.append(lp)
    return chosen


# ---------------------------------------------------------------------------------------------------
# llvm-mca

@dataclass
class McaResult:
    cycles: float = 0.0      # simulated cycles per iteration
    rthroughput: float = 0.0  # llvm-mca's block reciprocal throughput (static bound)
    busiest: str = ""        # resource with the most pressure, and what uses it
    fma_port: float = 0.0    # cycles per iteration on the busiest resource FMAs use
    load_port: float = 0.0   # cycles per iteration on the busiest resource loads use
    deps: float = 0.0        # % of cycles llvm-mca attributes to register dependencies
    error: str = ""


def insn_class(s: str) -> str:
    op, _, args = s.partition("\t")
    if op.startswith(("vfmadd", "vfnmadd")):
        return "FMA"
    if "(" in args and (op.startswith(("vbroadcast", "vmov", "mov", "vmask", "cmp"))):
        src_mem = args.index("(") < (args.index(",") if "," in args else len(args))
        return "load" if src_mem or op.startswith("vbroadcast") else "store"
    return "other"


def run_mca(mca: str, cpu: str, body: list[str], iterations: int) -> McaResult:
    r = McaResult()
    p = subprocess.run([mca, f"-mcpu={cpu}", f"-iterations={iterations}", "-bottleneck-analysis"],
                       input="\n".join(body) + "\n", capture_output=True, text=True)
    if p.returncode:
        r.error = (p.stderr.strip().split("\n") or ["failed"])[0][:60]
        return r
    out = p.stdout
    r.cycles = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1)) / iterations
    r.rthroughput = float(re.search(r"Block RThroughput:\s+([\d.]+)", out).group(1))
    m = re.search(r"Register Dependencies\s*\[\s*([\d.]+)%", out)
    r.deps = float(m.group(1)) if m else 0.0
    names = re.findall(r"^\[([\d.]+)\]\s+- (\S+)", out.split("Resource pressure per iteration")[0], re.M)
    table = out.split("Resource pressure by instruction:")[-1].strip().split("\n")[1:]
    n = len(names)
    by_class: list[dict[str, float]] = [dict() for _ in range(n)]
    load_units = set()  # resources used by plain vector loads
    for row in table:
        tok = row.split()
        if len(tok) <= n:
            continue
        insn = row.split(None, n)[-1].strip().replace(" ", "\t", 1)
        cls = insn_class(insn)
        for i, t in enumerate(tok[:n]):
            if t != "-":
                by_class[i][cls] = by_class[i].get(cls, 0.0) + float(t)
                if cls == "load" and insn.startswith(("vmovup", "vmovap")):
                    load_units.add(i)
    # a resource with units (Zn4FP45 [12.0], [12.1]) counts per unit
    totals = [sum(d.values()) for d in by_class]
    if not totals:
        return r
    i = max(range(n), key=lambda k: totals[k])
    d = by_class[i]
    main = max(d, key=d.get)
    r.busiest = f"{names[i][1]} {totals[i]:.0f} ({main} {100 * d[main] / totals[i]:.0f}%)"
    # the busiest resource on which FMAs (loads) are at least half the work
    r.fma_port = max((totals[k] for k in range(n) if 2 * by_class[k].get("FMA", 0) >= totals[k] > 0), default=0.0)
    r.load_port = max((totals[k] for k in load_units if 2 * by_class[k].get("load", 0) >= totals[k] > 0),
                      default=0.0)
    return r


# The model's cost of the instructions the kernels are made of: cycles per instruction, independent ones.
PROBES = {
    "zmm FMA": "".join(f"vfmadd231ps %zmm30, %zmm31, %zmm{i}\n" for i in range(16)),
    "ymm FMA": "".join(f"vfmadd231ps %ymm14, %ymm15, %ymm{i}\n" for i in range(12)),
    "zmm bcast m32": "".join(f"vbroadcastss {4 * i}(%rdi), %zmm{i}\n" for i in range(16)),
    "ymm bcast m32": "".join(f"vbroadcastss {4 * i}(%rdi), %ymm{i}\n" for i in range(16)),
    "zmm load": "".join(f"vmovups {64 * i}(%rdi), %zmm{i}\n" for i in range(16)),
    "ymm load": "".join(f"vmovups {32 * i}(%rdi), %ymm{i}\n" for i in range(16)),
}


def probe(mca: str, cpu: str, text: str) -> str:
    p = subprocess.run([mca, f"-mcpu={cpu}", "-iterations=100"], input=text, capture_output=True, text=True)
    m = re.search(r"Total Cycles:\s+(\d+)", p.stdout)
    return f"{int(m.group(1)) / 100 / text.count(chr(10)):.2f}" if m and not p.returncode else "n/a"


def model_name(mca: str, cpu: str) -> str:
    p = subprocess.run([mca, f"-mcpu={cpu}", "-iterations=1"], input="nop\n", capture_output=True, text=True)
    m = re.search(r"^\[\d+\]\s+- ([A-Za-z]+\d*[A-Za-z]*?)(?:Port|Divider|AGU|ALU|FP|Div|LSU)", p.stdout, re.M)
    return m.group(1) if m else "?"


# ---------------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mca", help="llvm-mca executable (default: $LLVM_MCA, else the newest llvm-mca-N)")
    ap.add_argument("--cxx", default=os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or "c++")
    ap.add_argument("--cpus", default=",".join(c[0] for c in CPUS))
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--all", action="store_true", help="also list every FMA loop found")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--keep-loops", metavar="DIR", help="write each analysed loop body to DIR")
    args = ap.parse_args()

    mca = find_mca(args.mca)
    if not shutil.which(args.cxx):
        die(f"C++ compiler {args.cxx!r} not found (set CXX or --cxx)")
    cpus = [c for c in CPUS if c[0] in args.cpus.split(",")]
    kinds = [k for k in args.kinds.split(",") if k in KINDS]
    flags = library_flags()
    asm = compile_asm(args.cxx, flags, args.no_cache)
    cxx_ver = subprocess.run([args.cxx, "--version"], capture_output=True, text=True).stdout.split("\n")[0]

    loops, chosen = [], []
    for level in ("avx512", "avx2"):
        found = find_loops(asm[level], level)
        for lp in found:
            analyse(lp)
        found = [lp for lp in found if lp.fmas >= 4]
        loops += found
        for lp in classify(found, kernel_configs(level)):
            lp.level = level
            if lp.kind in kinds:
                chosen.append(lp)
    order = {k: i for i, k in enumerate(KINDS)}
    chosen.sort(key=lambda lp: (lp.level != "avx512", lp.dtype, order[lp.kind]))

    print(f"llvm-mca: {mca} (LLVM {mca_version(mca)}); compiler: {cxx_ver}")
    print(f"flags: avx512: {' '.join(f for f in flags['avx512'] if f.startswith(('-m', '-O', '-ff')))}")
    print(f"       avx2:   {' '.join(f for f in flags['avx2'] if f.startswith(('-m', '-O', '-ff')))}")

    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        models = {c[0]: ex.submit(model_name, mca, c[0]) for c in cpus}
        probes = {(c[0], k): ex.submit(probe, mca, c[0], t) for c in cpus for k, t in PROBES.items()}
        for lp in chosen:
            for c in cpus:
                if lp.body and lp.level in c[2]:
                    jobs[(id(lp), c[0])] = ex.submit(run_mca, mca, c[0], lp.body, args.iterations)
        for (lid, cpu), f in jobs.items():
            next(lp for lp in chosen if id(lp) == lid).results[cpu] = f.result()

    print("\nThe model: cycles per instruction, for a block of independent ones (0.50 = two per cycle)")
    print(f"{'-mcpu':<16}{'model':<7}" + "".join(f"{k:>15}" for k in PROBES) + "   peak f32 flops/cycle assumed (why)")
    for c in cpus:
        print(f"{c[0]:<16}{models[c[0]].result():<7}" + "".join(f"{probes[(c[0], k)].result():>15}" for k in PROBES)
              + f"   {c[3]} ({c[4]})")

    print("\nLoops (per iteration: k steps unrolled; loads = broadcasts + vector loads + stack reloads)")
    print(f"{'level':<7}{'dtype':<6}{'kernel':<27}{'tile':>6}{'k/it':>5}{'FMA/it':>7}{'flop/it':>8}"
          f"{'loads/k':>8}{'bcast/k':>8}{'reload/k':>9}{'insn/it':>8}  function")
    for lp in chosen:
        if not lp.body:
            print(f"{lp.level:<7}{lp.dtype:<6}{KIND_TEXT[lp.kind]:<27}{lp.shape:>6}  -- {lp.note}")
            continue
        print(f"{lp.level:<7}{lp.dtype:<6}{KIND_TEXT[lp.kind]:<27}{lp.shape:>6}{lp.steps:>5}{lp.fmas:>7}"
              f"{lp.flops:>8}{lp.loads / lp.steps:>8.1f}{lp.bcasts / lp.steps:>8.1f}{lp.reloads / lp.steps:>9.1f}"
              f"{len(lp.body):>8}  {lp.func[:60]}{'  !' + lp.note if lp.note else ''}")

    print("\nPredictions per loop and CPU model. cyc/it: simulated cycles per iteration (llvm-mca's Block"
          "\nRThroughput, its static bound, in brackets); flop/cyc from the simulated cycles; of peak: that"
          "\nfraction of the CPU's FMA peak above; FMA port / load port: cycles per iteration on the busiest"
          "\nresource doing mostly FMAs / mostly loads (of those vector loads use); deps%: cycles llvm-mca blames on register dependencies;"
          "\nbusiest: the busiest resource, its cycles per iteration and who uses it most.")
    print(f"{'loop':<36}{'-mcpu':<16}{'cyc/it':>15}{'flop/cyc':>9}{'of peak':>8}{'FMA port':>9}"
          f"{'load port':>10}{'deps%':>6}  busiest")
    for lp in chosen:
        if not lp.body:
            continue
        name = f"{lp.level} {lp.dtype} {lp.kind} {lp.shape} ({lp.fmas} FMA)"
        for c in cpus:
            r = lp.results.get(c[0])
            if r is None:
                continue
            if r.error:
                print(f"{name:<36}{c[0]:<16}  llvm-mca: {r.error}")
                continue
            peak = c[3] / (2 if lp.dtype == "f64" else 1)
            fpc = lp.flops / r.cycles
            print(f"{name:<36}{c[0]:<16}{r.cycles:>7.1f} ({r.rthroughput:>5.1f}){fpc:>9.1f}{fpc / peak:>8.2f}"
                  f"{r.fma_port:>9.1f}{r.load_port:>10.1f}{r.deps:>6.0f}  {r.busiest}")
            name = ""

    if args.all:
        print("\nEvery branch-free loop with FMAs (tile inferred from the instructions):")
        for lp in loops:
            print(f"{lp.level:<7}{lp.shape:>6} k/it {lp.steps:<3} FMA {lp.fmas:<4} acc {lp.acc:<3} loads {lp.loads:<4}"
                  f" reloads {lp.reloads:<3} insn {len(lp.body):<4} {lp.kind or '-':<7}{lp.func[:90]}")
    if args.keep_loops:
        os.makedirs(args.keep_loops, exist_ok=True)
        for lp in chosen:
            if lp.body:
                with open(os.path.join(args.keep_loops, f"{lp.level}_{lp.dtype}_{lp.kind}.s"), "w") as f:
                    f.write("\n".join(lp.body) + "\n")


if __name__ == "__main__":
    main()
