"""The Draw page's drawing canvas (not a page): a small Streamlit v2 component, black ink on white.

It sends the drawing the moment a stroke ends (pointer up), as a PNG of the whole canvas: the
prediction can only be as quick as that. Undo, redo and wipe sit in a toolbar above it; pointer
events make mouse, pen and touch draw alike. Stable hook: the drawing surface is
`canvas.draw-canvas` (in the page's own DOM: the component does not isolate its styles).
"""

from __future__ import annotations

import base64
import struct

import streamlit as st

from mnist_core.data.preprocess import InputError

SIZE = 280  # the canvas's side in pixels: what it sends is exactly this size (canvas.width)
PNG_URL = "data:image/png;base64,"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REFUSED = "The drawing was ignored: "
NOT_PNG = "it is not an image the canvas makes (a PNG of the drawing)."


def max_png_bytes(size: int) -> int:
    """The most a size x size RGBA PNG can take: its raw rows (a filter byte each), as the stored
    deflate blocks of incompressible pixels, plus the chunks' headers."""
    raw = size * (4 * size + 1)
    return raw + raw // 1000 + 64 * 1024


HTML = """
<div class="draw-root">
  <div class="draw-tools">
    <button type="button" data-act="undo" title="Undo the last stroke" aria-label="Undo">&#x21B6;</button>
    <button type="button" data-act="redo" title="Redo" aria-label="Redo">&#x21B7;</button>
    <button type="button" data-act="wipe" title="Wipe the canvas" aria-label="Wipe">&#x2715;</button>
  </div>
  <canvas class="draw-canvas" aria-label="Drawing canvas: draw one digit"></canvas>
</div>
"""

CSS = """
.draw-root { display: inline-flex; flex-direction: column; align-items: flex-end; gap: 4px; }
.draw-tools { display: flex; gap: 2px; }
.draw-tools button {
  font: 15px/1 sans-serif; width: 28px; height: 24px; padding: 0; cursor: pointer;
  border: 1px solid var(--st-border-color, #d6d6d9); border-radius: 6px;
  background: var(--st-background-color, #fff); color: var(--st-text-color, #31333f);
}
.draw-tools button:disabled { opacity: 0.35; cursor: default; }
.draw-canvas { border: 1px solid #9ca3af; touch-action: none; cursor: crosshair; background: #fff; }
"""

JS = """
export default function ({ data, parentElement, setStateValue }) {
  const root = parentElement.querySelector(".draw-root");
  const s = root.__draw || (root.__draw = start(root, data, setStateValue));
  s.brush = data.brush;
  s.color = data.color;
}

function start(root, data, setStateValue) {
  const canvas = root.querySelector("canvas");
  const ctx = canvas.getContext("2d");
  const s = { strokes: [], undone: [], current: null, brush: data.brush, color: data.color };
  canvas.width = canvas.height = data.size;
  canvas.style.width = canvas.style.height = data.size + "px";
  const tools = Object.fromEntries(
    Array.from(root.querySelectorAll("button")).map((b) => [b.dataset.act, b]));

  const paint = (stroke) => {  // one stroke: round dots joined by round-capped lines
    const p = stroke.points;
    ctx.strokeStyle = ctx.fillStyle = stroke.color;
    ctx.lineWidth = stroke.width;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.arc(p[0], p[1], stroke.width / 2, 0, 2 * Math.PI);
    ctx.fill();
    if (p.length > 2) {
      ctx.beginPath();
      ctx.moveTo(p[0], p[1]);
      for (let i = 2; i < p.length; i += 2) ctx.lineTo(p[i], p[i + 1]);
      ctx.stroke();
    }
  };
  const repaint = () => {
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    s.strokes.forEach(paint);
    tools.undo.disabled = !s.strokes.length;
    tools.redo.disabled = !s.undone.length;
    tools.wipe.disabled = !s.strokes.length;
  };
  const send = () => setStateValue("drawing", s.strokes.length
    ? { png: canvas.toDataURL("image/png"), strokes: s.strokes.length } : null);
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };

  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    canvas.setPointerCapture(e.pointerId);
    s.current = { points: at(e), width: s.brush, color: s.color };
    paint(s.current);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!s.current) return;
    const p = s.current.points;
    ctx.beginPath();  // only the new segments; a whole repaint happens at the stroke's end
    ctx.moveTo(p[p.length - 2], p[p.length - 1]);
    const events = (e.getCoalescedEvents && e.getCoalescedEvents()) || [];
    for (const ev of events.length ? events : [e]) {
      const q = at(ev);
      p.push(q[0], q[1]);
      ctx.lineTo(q[0], q[1]);
    }
    ctx.strokeStyle = s.current.color;
    ctx.lineWidth = s.current.width;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.stroke();
  });
  const end = () => {
    if (!s.current) return;
    s.strokes.push(s.current);
    s.current = null;
    s.undone = [];
    repaint();
    send();  // at once: the prediction waits for nothing else
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  tools.undo.addEventListener("click", () => {
    if (!s.strokes.length) return;
    s.undone.push(s.strokes.pop());
    repaint();
    send();
  });
  tools.redo.addEventListener("click", () => {
    if (!s.undone.length) return;
    s.strokes.push(s.undone.pop());
    repaint();
    send();
  });
  tools.wipe.addEventListener("click", () => {
    if (!s.strokes.length) return;
    s.undone = s.strokes.reverse();
    s.strokes = [];
    repaint();
    send();
  });
  repaint();
  return s;
}
"""

_component = st.components.v2.component(
    "mnist_lab_draw_canvas", html=HTML, css=CSS, js=JS, isolate_styles=False
)


def drawing_canvas(key: str, brush: int, size: int = SIZE, color: str = "#000000") -> bytes | None:
    """The canvas; the drawing as PNG bytes (size x size), or None while nothing (or nothing
    readable) is drawn."""
    _component(
        key=key,
        data=dict(brush=brush, size=size, color=color),
        default={"drawing": None},
        on_drawing_change=lambda: None,
        width="content",
        height="content",
    )
    try:
        return drawing_of(key, size)
    except InputError:
        return None  # the page reads it first (drawing_of) and shows why


def drawing_of(key: str, size: int = SIZE) -> bytes | None:
    """The drawing the canvas with this key last sent (PNG bytes), or None while nothing is drawn;
    readable before the canvas is drawn in a run, so a page can act on it first.

    The browser reports the drawing, so anything may arrive here: only a PNG data URL of this
    canvas's own size is taken, checked before a byte of it is decoded (InputError otherwise)."""
    state = st.session_state.get(key)
    drawing = state.get("drawing") if hasattr(state, "get") else None
    url = drawing.get("png") if hasattr(drawing, "get") else None
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(PNG_URL):
        raise InputError(REFUSED + NOT_PNG)
    if len(url) > len(PNG_URL) + 4 * (max_png_bytes(size) + 2) // 3:
        raise InputError(REFUSED + f"it is larger than a {size}x{size} drawing can be.")
    try:
        raw = base64.b64decode(url[len(PNG_URL) :], validate=True)
    except ValueError:
        raise InputError(REFUSED + NOT_PNG) from None
    if raw[:8] != PNG_SIGNATURE or raw[12:16] != b"IHDR" or len(raw) < 24:
        raise InputError(REFUSED + NOT_PNG)
    width, height = struct.unpack(">II", raw[16:24])
    if (width, height) != (size, size):
        raise InputError(REFUSED + f"it is {width}x{height} pixels, not the canvas's {size}x{size}.")
    return raw
