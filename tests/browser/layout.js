() => {
  // The rightmost visible text or control outside the toolbar, and the texts that
  // must stay on one line (variant names, run buttons).
  const clipRight = (element) => {
    let right = Infinity;
    for (let e = element; e && e !== document.documentElement; e = e.parentElement) {
      const style = getComputedStyle(e);
      if (style.overflowX !== "visible") right = Math.min(right, e.getBoundingClientRect().right);
    }
    return right;
  };
  let rightmost = { right: 0, text: "" };
  const range = document.createRange();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (!node.textContent.trim() || parent.closest("#djDebugRoot, script, style")) continue;
    range.selectNodeContents(node);
    const clip = clipRight(parent);
    for (const rect of range.getClientRects()) {
      const right = Math.min(rect.right, clip);
      if (rect.width && right > rightmost.right) rightmost = { right, text: node.textContent.trim().slice(0, 60) };
    }
  }
  const lines = (element) => { range.selectNodeContents(element); return new Set([...range.getClientRects()].filter((r) => r.width).map((r) => Math.round(r.top))).size; };
  const wrapped = [...document.querySelectorAll("table.variants td.name strong, .run-button, #compare-button")]
    .filter((e) => lines(e) > 1).map((e) => e.textContent.trim());
  return { rightmost, wrapped, scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth };
}
