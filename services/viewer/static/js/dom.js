// Building DOM nodes from data without ever parsing text as markup (no innerHTML anywhere in the viewer).

/**
 * `h("a", {href, class: "x", dataset: {id}}, "text", child)`: an element with attributes and children.
 * Strings become text nodes; `null`, `undefined` and `false` children are skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "text") element.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (value === true) element.setAttribute(key, "");
    else element.setAttribute(key, String(value));
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** SVG element with attributes. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);

/** `url` when it is an http(s) or mailto URL, else `null` (no `javascript:`, `data:`, ...). */
export function safeUrl(url, base = document.baseURI) {
  if (typeof url !== "string" || !url.trim()) return null;
  try {
    const parsed = new URL(url.trim(), base);
    return SAFE_SCHEMES.has(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

/** A link opening outside the viewer (no referrer, no opener). */
export function externalLink(href, text) {
  const url = safeUrl(href);
  if (!url) return document.createTextNode(text);
  const sameOrigin = new URL(url).origin === window.location.origin;
  return h("a", { href: url, target: sameOrigin ? null : "_blank", rel: "noopener noreferrer" }, text);
}
