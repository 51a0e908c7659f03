package main

// docsPage renders /openapi.json as a browsable list of operations. It is self-contained (no
// CDN assets can be fetched where the gateway runs) and needs nothing but the served spec.
const docsPage = `
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Commerce Mesh REST API</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
h2{border-bottom:1px solid #ddd;padding-bottom:.3rem}
.op{margin:.4rem 0;padding:.4rem .6rem;border-radius:4px;background:#f6f8fa}
.verb{display:inline-block;width:4.5rem;font-weight:700;font-family:monospace}
.path{font-family:monospace}.summary{color:#555;margin-left:.5rem}
</style></head>
<body><h1>Commerce Mesh REST API</h1>
<p>Generated from the gRPC contracts. Machine-readable spec: <a href="/openapi.json">/openapi.json</a>.
Send <code>Authorization: Bearer &lt;JWT&gt;</code>, and <code>Idempotency-Key: &lt;UUID&gt;</code> on every call that changes something.</p>
<div id="ops">Loading…</div>
<script>
fetch('/openapi.json').then(r => r.json()).then(spec => {
  const byTag = {};
  for (const [path, ops] of Object.entries(spec.paths || {})) {
    for (const [verb, op] of Object.entries(ops)) {
      const tag = (op.tags || ['other'])[0];
      (byTag[tag] = byTag[tag] || []).push({verb, path, op});
    }
  }
  const root = document.getElementById('ops');
  root.textContent = '';
  for (const tag of Object.keys(byTag).sort()) {
    const h = document.createElement('h2'); h.textContent = tag; root.appendChild(h);
    for (const {verb, path, op} of byTag[tag]) {
      const d = document.createElement('div'); d.className = 'op';
      const v = document.createElement('span'); v.className = 'verb'; v.textContent = verb.toUpperCase();
      const p = document.createElement('span'); p.className = 'path'; p.textContent = path;
      const s = document.createElement('span'); s.className = 'summary'; s.textContent = op.summary || op.operationId || '';
      d.append(v, p, s); root.appendChild(d);
    }
  }
});
</script></body></html>`
