"""The one stylesheet of the web pages (served same-origin at ``/_web/style.css``; no external assets)."""

from __future__ import annotations

import hashlib

CSS = """\
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa;--acc:#0969da;--chip:#ddf4ff}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--acc);text-decoration:none}a:hover{text-decoration:underline}
header{display:flex;gap:1rem;align-items:center;padding:.6rem 1.5rem;border-bottom:1px solid var(--line);background:var(--soft)}
.brand{font-weight:700;color:var(--fg);font-size:1.1rem}
header .search{flex:1;display:flex;gap:.4rem;max-width:32rem}
header .search input{flex:1}
.who{margin-left:auto;display:flex;gap:.5rem;align-items:center;color:var(--muted)}
main{max-width:72rem;margin:0 auto;padding:1rem 1.5rem 3rem}
h1{font-size:1.5rem;margin:.6rem 0;display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}
h2{font-size:1.15rem}h3{font-size:.9rem;margin:.6rem 0 .2rem;color:var(--muted)}
input,select,button{font:inherit;padding:.25rem .5rem;border:1px solid var(--line);border-radius:6px;background:#fff}
button{background:var(--soft);cursor:pointer}
.filters,.rev{display:flex;gap:.8rem;flex-wrap:wrap;align-items:center;margin:.6rem 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.85rem}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.type{font-size:.75rem;border-radius:4px;padding:.05rem .4rem;background:var(--soft);border:1px solid var(--line);color:var(--muted)}
.badge{font-size:.75rem;border:1px solid #d4a72c;color:#7d4e00;border-radius:999px;padding:0 .5rem}
.chip{display:inline-block;font-size:.75rem;background:var(--chip);border-radius:999px;padding:0 .5rem;margin:.1rem .2rem .1rem 0;color:#0550ae}
.tags{margin:.2rem 0}
.muted,.count,.commitline{color:var(--muted)}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.85em}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:.5rem .7rem;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
code.sha{font-size:.75rem;word-break:break-all}
.use pre{white-space:pre;font-size:.8em}
.tabs{display:flex;gap:1.2rem;border-bottom:1px solid var(--line);margin:.6rem 0 1rem}
.tabs a{padding:.4rem 0;color:var(--fg)}.tabs a[aria-current=page]{border-bottom:2px solid #fd8c73;font-weight:600}
.cols{display:grid;grid-template-columns:minmax(0,1fr) 24rem;gap:2rem}
@media (max-width:900px){.cols{grid-template-columns:1fr}}
.card img{max-width:100%}.card table{width:auto}
aside .facts{padding-left:1.1rem;color:var(--muted)}
table.meta{font-size:.85rem;margin-top:1rem}table.meta caption{text-align:left;font-weight:600;padding:.3rem 0}
ol.commits{list-style:none;padding:0}ol.commits li{border-bottom:1px solid var(--line);padding:.5rem 0}
ol.commits .title{font-weight:600}pre.message{margin:.3rem 0 0}
.pager{display:flex;gap:1rem}
.error{color:#cf222e}
.login{display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}
"""

CSS_BYTES = CSS.encode()
CSS_ETAG = '"' + hashlib.sha256(CSS_BYTES).hexdigest()[:16] + '"'
