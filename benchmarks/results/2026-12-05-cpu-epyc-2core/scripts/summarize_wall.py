import json, glob, statistics as st, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
loads = []
for f in sorted(glob.glob("wall_clock_json/wall_*_*_*.json")):
    d = json.load(open(f)); loads.append(d["load"][0])
    for case, rounds in d["cases"].items():
        for o, p in rounds:
            rows[(case, d["threads"])][d["tag"]].append((o, p))
print(f"load average (1 min) at the start of each process: {min(loads):.1f}-{max(loads):.1f}")
print(f"{'case':<28}{'thr':>4} {'before':>9} {'after':>9} {'eager':>9} {'eager/after':>12} {'eager/before':>13} {'after vs before':>16}")
for (case, nt), tags in rows.items():
    a = tags["after"]; b = tags["before"]
    med = lambda xs: st.median(xs)
    ra = med([p / o for o, p in a]); rb = med([p / o for o, p in b])
    print(f"{case:<28}{nt:>4} {med([o for o,_ in b])*1e3:8.2f}ms {med([o for o,_ in a])*1e3:8.2f}ms {med([p for _,p in a])*1e3:8.2f}ms {ra:11.2f}x {rb:12.2f}x {ra/rb:15.2f}x")
