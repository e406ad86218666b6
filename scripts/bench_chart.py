#!/usr/bin/env python3
"""The benchmark as a picture: one horizontal bar per request and algorithm,
its throughput as a multiple of the single-core RSA-2048 signing rate
measured in the same run (1.0 = as fast as signing one token per request);
beside it, its CPU per request as a multiple of its floor (issue 23: what
the machine asks for its cryptography and hop ends, same run; the target
is at most 1.5x).

    scripts/bench_chart.py RESULTS.tsv SIGN_RATE OUT.svg [NOTE]

RESULTS.tsv: one row per measurement,
`alg<TAB>request<TAB>req/s<TAB>ratio[<TAB>x floor]` (scripts/bench.sh
writes it; an empty x floor draws no bar). Plain SVG, no library: it opens
in any browser and renders on GitHub.
"""

import html
import sys


def main():
    results, sign_rate, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    note = f"; {sys.argv[4]}" if len(sys.argv) > 4 else ""
    rows = []
    with open(results, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) not in (4, 5):
                continue
            alg, name, rps, ratio = parts[:4]
            floor = parts[4] if len(parts) == 5 else ""
            try:
                rows.append((alg, name, float(rps), float(ratio), float(floor) if floor else None))
            except ValueError:
                continue
    if not rows:
        sys.exit(f"{results}: no rows to draw")

    algs = list(dict.fromkeys(r[0] for r in rows))
    names = list(dict.fromkeys(r[1] for r in rows))
    by = {(r[0], r[1]): r for r in rows}
    colors = ["#0b3d91", "#d9480f", "#2b8a3e", "#862e9c"]

    label_w, bar_h, gap, top, right = 260, 18, 12, 88, 70
    plot_w, floor_w = 560, 300
    top_ratio = max(max(r[3] for r in rows), 1.0)
    scale = plot_w / top_ratio
    floors = [r[4] for r in rows if r[4] is not None]
    top_floor = max(floors + [2.0])
    floor_x = label_w + plot_w + right + 20
    floor_scale = floor_w / top_floor
    group_h = bar_h * len(algs) + gap
    height = top + group_h * len(names) + 56
    width = floor_x + floor_w + right

    out_lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="DejaVu Sans, sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="10" y="24" font-size="17" font-weight="700">Throughput per request kind, as a multiple '
        f"of the single-core RSA-2048 signing rate</text>",
        f'<text x="10" y="46" fill="#444">openssl speed: {sign_rate:,.0f} signatures/s on this machine, '
        f"same run{html.escape(note)}</text>",
        f'<text x="10" y="64" fill="#444">1.0x = as many requests per second as one core makes '
        f"RSA-2048 signatures</text>",
    ]
    if floors:
        out_lines.append(
            f'<text x="{floor_x}" y="{top - 14}" font-weight="700">CPU per request, x its floor '
            f"(target 1.5x)</text>"
        )
        for tick in [0, 1, 1.5] + list(range(2, int(top_floor) + 1)):
            x = floor_x + tick * floor_scale
            stroke = "#c92a2a" if tick == 1.5 else ("#111" if tick == 1 else "#ddd")
            out_lines.append(
                f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{height - 46}" stroke="{stroke}"/>'
            )
            if tick != 1.5 or top_floor < 4:
                out_lines.append(
                    f'<text x="{x:.1f}" y="{height - 30}" text-anchor="middle" fill="#444">{tick}x</text>'
                )
    # Grid: whole multiples, and 1.0x marked.
    step = 1 if top_ratio <= 10 else 5
    tick = 0
    while tick <= top_ratio + 1e-9:
        x = label_w + tick * scale
        stroke = "#111" if tick == 1 else "#ddd"
        out_lines.append(
            f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{height - 46}" stroke="{stroke}"/>'
        )
        out_lines.append(
            f'<text x="{x:.1f}" y="{height - 30}" text-anchor="middle" fill="#444">{tick}x</text>'
        )
        tick += step
    for i, name in enumerate(names):
        y0 = top + i * group_h
        out_lines.append(
            f'<text x="{label_w - 10}" y="{y0 + bar_h * len(algs) / 2 + 4:.1f}" '
            f'text-anchor="end">{html.escape(name)}</text>'
        )
        for j, alg in enumerate(algs):
            row = by.get((alg, name))
            if row is None:
                continue
            y = y0 + j * bar_h
            w = max(row[3] * scale, 1)
            out_lines.append(
                f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 4}" '
                f'fill="{colors[j % len(colors)]}"><title>{html.escape(alg)} {html.escape(name)}: '
                f"{row[2]:,.0f} req/s, {row[3]:.2f}x</title></rect>"
            )
            out_lines.append(
                f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h - 5}" fill="#111">'
                f"{row[3]:.2f}x</text>"
            )
            if row[4] is not None:
                fw = max(row[4] * floor_scale, 1)
                out_lines.append(
                    f'<rect x="{floor_x}" y="{y + 2}" width="{fw:.1f}" height="{bar_h - 4}" '
                    f'fill="{colors[j % len(colors)]}" fill-opacity="0.55"><title>{html.escape(alg)} '
                    f"{html.escape(name)}: CPU {row[4]:.2f}x its floor</title></rect>"
                )
                out_lines.append(
                    f'<text x="{floor_x + fw + 6:.1f}" y="{y + bar_h - 5}" fill="#111">'
                    f"{row[4]:.2f}x</text>"
                )
    lx = label_w
    for j, alg in enumerate(algs):
        out_lines.append(
            f'<rect x="{lx}" y="{height - 18}" width="12" height="12" fill="{colors[j % len(colors)]}"/>'
        )
        out_lines.append(f'<text x="{lx + 16}" y="{height - 7}">{html.escape(alg)}</text>')
        lx += 90
    out_lines.append("</svg>")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(out_lines) + "\n")
    print(f"chart: {out} ({len(rows)} bars)")


if __name__ == "__main__":
    main()
