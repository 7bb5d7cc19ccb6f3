// A small Markdown renderer that builds DOM nodes: record text is never parsed as HTML.
//
// Blocks: paragraphs, ATX headings (`#` becomes h{baseLevel}, `##` the next level...), bullet and numbered lists,
// block quotes, fenced code and horizontal rules. Inline: **strong**, *emphasis* / _emphasis_, `code`,
// [links](url) and <autolinks> (http, https and mailto only), backslash escapes and hard line breaks.
// Raw HTML stays text.

import { externalLink, h } from "./dom.js";

const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;
const FENCE = /^\s{0,3}(```|~~~)/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;

/** A DocumentFragment for the Markdown `text`. */
export function renderMarkdown(text, { baseLevel = 3 } = {}) {
  const fragment = document.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1;
      fragment.append(h("pre", {}, h("code", {}, body.join("\n"))));
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const level = Math.min(6, baseLevel + heading[1].length - 1);
      fragment.append(append(h(`h${level}`), inline(heading[2])));
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      fragment.append(h("hr"));
      i += 1;
      continue;
    }
    if (BULLET.test(line) || NUMBERED.test(line)) {
      const ordered = !BULLET.test(line);
      const pattern = ordered ? NUMBERED : BULLET;
      const list = h(ordered ? "ol" : "ul");
      if (ordered) {
        const start = Number(NUMBERED.exec(line)[1]);
        if (start !== 1) list.setAttribute("start", String(start));
      }
      let item = null;
      while (i < lines.length && lines[i].trim()) {
        const match = pattern.exec(lines[i]);
        if (match) {
          item = h("li");
          list.append(item);
          append(item, inline(ordered ? match[2] : match[1]));
        } else if (item) {
          append(item, [" ", ...inline(lines[i].trim())]);
        }
        i += 1;
      }
      fragment.append(list);
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && QUOTE.test(lines[i])) body.push(QUOTE.exec(lines[i++])[1]);
      fragment.append(h("blockquote", {}, renderMarkdown(body.join("\n"), { baseLevel })));
      continue;
    }
    const paragraph = [];
    while (
      i < lines.length &&
      lines[i].trim() &&
      !HEADING.test(lines[i]) &&
      !FENCE.test(lines[i]) &&
      !BULLET.test(lines[i]) &&
      !NUMBERED.test(lines[i]) &&
      !QUOTE.test(lines[i])
    ) {
      paragraph.push(lines[i++]);
    }
    const p = h("p");
    paragraph.forEach((part, index) => {
      const hardBreak = / {2,}$|\\$/.test(part);
      append(p, inline(part.replace(/ {2,}$|\\$/, "").trim()));
      if (index < paragraph.length - 1) p.append(hardBreak ? h("br") : " ");
    });
    fragment.append(p);
  }
  return fragment;
}

function append(element, nodes) {
  for (const node of nodes) element.append(node);
  return element;
}

const ESCAPABLE = "\\`*_{}[]()#+-.!<>|~\"'";

/** Inline Markdown of one line of text: an array of nodes and strings. */
export function inline(text) {
  const out = [];
  let buffer = "";
  const flush = () => {
    if (buffer) out.push(buffer);
    buffer = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "`") {
      const end = text.indexOf("`", i + 1);
      if (end > i) {
        flush();
        out.push(h("code", {}, text.slice(i + 1, end)));
        i = end + 1;
        continue;
      }
    }
    if (c === "<") {
      const match = /^<((?:https?:\/\/|mailto:)[^\s<>]+)>/.exec(text.slice(i));
      if (match) {
        flush();
        out.push(externalLink(match[1], match[1].replace(/^mailto:/, "")));
        i += match[0].length;
        continue;
      }
    }
    if (c === "[") {
      const match = /^\[([^\]]+)\]\(\s*([^()\s]+(?:\([^()\s]*\))?[^()\s]*)(?:\s+"[^"]*")?\s*\)/.exec(text.slice(i));
      if (match) {
        flush();
        const link = externalLink(match[2], "");
        if (link.nodeType === Node.TEXT_NODE) out.push(...inline(match[1]));
        else out.push(append(link, inline(match[1])));
        i += match[0].length;
        continue;
      }
    }
    if ((c === "*" || c === "_") && text[i + 1] === c) {
      const end = text.indexOf(c + c, i + 2);
      if (end > i + 2) {
        flush();
        out.push(append(h("strong"), inline(text.slice(i + 2, end))));
        i = end + 2;
        continue;
      }
    }
    if (c === "*" || (c === "_" && !/\w/.test(text[i - 1] || ""))) {
      const end = text.indexOf(c, i + 1);
      if (end > i + 1 && text[i + 1] !== " " && (c === "*" || !/\w/.test(text[end + 1] || ""))) {
        flush();
        out.push(append(h("em"), inline(text.slice(i + 1, end))));
        i = end + 1;
        continue;
      }
    }
    buffer += c;
    i += 1;
  }
  flush();
  return out;
}
