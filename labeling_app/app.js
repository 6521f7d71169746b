// The browser side of the labeling page (labeling_app/app.py). This file is ONE object expression:
// each Gradio event's `js=` is `(...args) => (<this file>).method(...args)`, so every event carries
// its own copy and nothing depends on the order in which the page runs scripts.
//
// The server sends an item as one JSON string (a hidden text box); `show` spreads it over the
// prompt, the K response boxes and the rank radios in the browser. Model text only ever goes into
// text boxes' values: nothing here builds HTML from it.
({
  LETTERS: "ABCDEFGHI",

  // ranks[i] = rank of the response at position i (null = not ranked): "C > B = D > A".
  preview(k, ranks) {
    const tiers = new Map(), missing = [];
    for (let i = 0; i < k; i++) {
      const r = ranks[i];
      if (r === null || r === undefined || r === "") { missing.push(this.LETTERS[i]); continue; }
      if (!tiers.has(Number(r))) tiers.set(Number(r), []);
      tiers.get(Number(r)).push(this.LETTERS[i]);
    }
    const text = [...tiers.keys()].sort((a, b) => a - b).map((r) => tiers.get(r).join(" = ")).join(" > ");
    if (!missing.length) return text;
    return (text ? text + "   " : "") + "(not ranked yet: " + missing.join(", ") + ")";
  },

  parse(itemJson) {
    try { return JSON.parse(itemJson || "{}") || {}; } catch (e) { return {}; }
  },

  // Event: the item changed. Returns [context, prompt, 9 texts, 9 ranks, flags, comment, skip reason,
  // preview]. The context (earlier turns of the conversation) shows only when there is some.
  show(itemJson) {
    const item = this.parse(itemJson), k = item.k || 0, texts = item.completions || [];
    const ranks = item.ranks || [];
    document.body.dataset.rlhfK = String(k);  // the CSS shows K slots (see layout_css)
    document.body.dataset.rlhfContext = item.context ? "1" : "0";
    if (window.rlhfKeys) window.rlhfKeys.reset();
    const L = [...this.LETTERS];
    const rankValues = L.map((_, i) => (i < k && ranks[i] !== undefined ? ranks[i] : null));
    return [item.context || "", item.prompt || "", ...L.map((_, i) => (i < k ? texts[i] : "")), ...rankValues,
            item.flags || [], item.comment || "", "", this.preview(k, rankValues)];
  },

  // Event: submit, before the server call. Sends the ranks the radios show (read from the page,
  // so the server gets one input instead of nine) with the item, flags and comment.
  collect(itemJson, _ranks, flags, comment) {
    const k = this.parse(itemJson).k || 0;
    const ranks = [...this.LETTERS].slice(0, k).map((c) => {
      const hit = document.querySelector("#rank-" + c + " input:checked");
      return hit ? Number(hit.value) : null;
    });
    return [itemJson, JSON.stringify(ranks), flags, comment];
  },

  // Event: a rank changed. Returns the preview.
  ranked(itemJson, ...ranks) {
    return this.preview(this.parse(itemJson).k || 0, ranks);
  },

  // Page load: keyboard shortcuts. Keys are ignored while typing in a text box, except Ctrl+Enter
  // (submit) and Esc (leave the box). A rank is set by clicking its radio input, so Gradio gets
  // exactly what a mouse click would send.
  installKeys() {
    const L = this.LETTERS;
    let sel = 0;
    const shown = (el) => el && el.offsetParent !== null;
    const slots = () => [...L].map((c) => document.getElementById("slot-" + c)).filter(shown);
    const click = (id) => { const b = document.getElementById(id); if (shown(b) && !b.disabled) b.click(); };
    const typing = (t) => t && (t.tagName === "TEXTAREA" || t.isContentEditable ||
      (t.tagName === "INPUT" && !["radio", "checkbox", "button"].includes(t.type)));
    const mark = () => {
      const s = slots();
      sel = Math.max(0, Math.min(sel, s.length - 1));
      s.forEach((el, i) => el.classList.toggle("rlhf-selected", i === sel));
    };
    const setRank = (i, r) => {
      const group = document.getElementById("rank-" + L[i]);
      const hit = group && [...group.querySelectorAll("input[type=radio]")].find((el) => el.value === String(r));
      if (hit) hit.click();
    };
    window.rlhfKeys = { reset: () => { sel = 0; setTimeout(mark, 50); } };
    document.addEventListener("click", (e) => {
      // Gradio nests two elements under one slot id: match by id, not by element.
      const slot = e.target.closest && e.target.closest(".rlhf-slot");
      if (slot) { sel = Math.max(0, slots().findIndex((s) => s.id === slot.id)); mark(); }
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); click("submit-btn"); return; }
      if (typing(e.target)) { if (e.key === "Escape") e.target.blur(); return; }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const key = e.key.toLowerCase();
      if (shown(document.getElementById("pair-row"))) {
        const id = { "1": "pair-a", "2": "pair-b", "3": "pair-tie", "=": "pair-tie", "4": "pair-bad" }[key];
        if (id) { e.preventDefault(); click(id); return; }
      } else if (/^[1-9]$/.test(key)) {
        const n = slots().length;
        if (n && Number(key) <= n) { e.preventDefault(); setRank(sel, Number(key)); sel = Math.min(sel + 1, n - 1); mark(); }
        return;
      }
      if (key === "arrowdown" || key === "j") { e.preventDefault(); sel += 1; mark(); }
      else if (key === "arrowup" || key === "k") { e.preventDefault(); sel -= 1; mark(); }
      else if (key === "enter" && e.target.tagName !== "BUTTON") { e.preventDefault(); click("submit-btn"); }
      else if (key === "s") {
        const box = document.querySelector("#skip-reason textarea, #skip-reason input");
        e.preventDefault();
        if (box && !box.value.trim()) box.focus(); else click("skip-btn");
      } else if (key === "u") { e.preventDefault(); click("undo-btn"); }
    });
    setTimeout(mark, 500);
  },
})
