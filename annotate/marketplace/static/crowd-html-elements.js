/* annotate's offline implementation of the Crowd HTML Elements.
 *
 * The marketplace serves this file in place of https://assets.crowd.aws/crowd-html-elements.js, so a
 * layout written for MTurk or Ground Truth works locally, for people in a browser and in previews.
 * Written from the element reference (attributes, regions, outputs); not AWS's code. What a
 * <crowd-form> submits is what MTurk records: one `taskAnswers` field holding a JSON array with one
 * object, keyed by each element's `name`.
 */
(function () {
  "use strict";
  if (window.customElements === undefined || customElements.get("crowd-form")) { return; }

  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"];
  var PREVIEW_ID = "ASSIGNMENT_ID_NOT_AVAILABLE";

  // ------------------------------------------------------------------ helpers
  /* Attribute values in the reference are JavaScript literals more often than JSON
   * (labels="['Cat', 'Dog']", exclusion-category="{ text: 'None' }"): a small literal parser. */
  function parseLiteral(text) {
    var s = String(text || ""), i = 0;
    function ws() { while (i < s.length && /\s/.test(s[i])) { i++; } }
    function fail() { throw new SyntaxError("cannot read " + JSON.stringify(s.slice(0, 60))); }
    function str() {
      var quote = s[i++], out = "";
      while (i < s.length && s[i] !== quote) {
        if (s[i] === "\\") { i++; var c = s[i++]; out += ({n: "\n", t: "\t", r: "\r"})[c] || c; }
        else { out += s[i++]; }
      }
      if (s[i] !== quote) { fail(); }
      i++;
      return out;
    }
    function word() {
      var m = /^[A-Za-z_$][\w$-]*|^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(s.slice(i));
      if (!m) { fail(); }
      i += m[0].length;
      return m[0];
    }
    function value() {
      ws();
      var c = s[i];
      if (c === "[") {
        i++; var arr = [];
        for (;;) { ws(); if (s[i] === "]") { i++; return arr; } arr.push(value()); ws(); if (s[i] === ",") { i++; } }
      }
      if (c === "{") {
        i++; var obj = {};
        for (;;) {
          ws(); if (s[i] === "}") { i++; return obj; }
          var key = (s[i] === "'" || s[i] === "\"") ? str() : word();
          ws(); if (s[i] !== ":") { fail(); } i++;
          obj[key] = value(); ws(); if (s[i] === ",") { i++; }
        }
      }
      if (c === "'" || c === "\"") { return str(); }
      var w = word();
      if (w === "true") { return true; } if (w === "false") { return false; } if (w === "null") { return null; }
      var n = Number(w);
      return isNaN(n) ? w : n;
    }
    var out = value(); ws();
    if (i < s.length) { fail(); }
    return out;
  }
  function literalAttr(el, name, fallback) {
    var raw = el.getAttribute(name);
    if (raw === null || raw.trim() === "") { return fallback; }
    try { return parseLiteral(raw); } catch (e) { console.error("<" + el.localName + "> " + name + ": " + e.message); return fallback; }
  }
  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { el.textContent = attrs[k]; }
      else if (k === "class") { el.className = attrs[k]; }
      else if (k.slice(0, 2) === "on") { el.addEventListener(k.slice(2), attrs[k]); }
      else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) { el.setAttribute(k, attrs[k] === true ? "" : attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { el.appendChild(typeof c === "string" ? document.createTextNode(c) : c); } });
    return el;
  }
  function whenParsed(fn) {
    if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", fn); } else { fn(); }
  }
  function query() { return new URLSearchParams(window.location.search); }
  function inPreview() { var id = query().get("assignmentId"); return !id || id === PREVIEW_ID; }
  var uid = 0;
  function nextId(prefix) { uid += 1; return prefix + "-" + uid; }
  /* answer-format="flatten-objects": nested objects become dotted keys ({"cat.label": "x"}). */
  function flatten(obj, prefix, out) {
    Object.keys(obj).forEach(function (k) {
      var v = obj[k];
      if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) { flatten(v, prefix + k + ".", out); }
      else { out[prefix + k] = v; }
    });
    return out;
  }
  function labelName(l) { return typeof l === "string" ? l : (l && (l.label || l.text)) || String(l); }

  var css = [
    "crowd-form,crowd-entity-annotation{display:block;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#16191f}",
    ".crowd-submit-row{margin:16px 0 8px}",
    ".crowd-btn{font:inherit;padding:8px 18px;border:1px solid #8d99a6;border-radius:4px;background:#fff;cursor:pointer}",
    ".crowd-btn.primary{background:#ec7211;border-color:#ec7211;color:#fff}",
    ".crowd-btn:disabled{opacity:.5;cursor:not-allowed}",
    ".crowd-btn:focus-visible,.crowd-choice:focus-within{outline:2px solid #0073bb;outline-offset:2px}",
    ".crowd-error{color:#d13212;margin:6px 0;min-height:1.2em}",
    ".crowd-preview{background:#fff7e0;border:1px solid #f0d48a;border-radius:4px;padding:8px 12px;margin:8px 0}",
    ".crowd-field{display:block;margin:8px 0}.crowd-field span{display:block;font-size:.9em;color:#545b64;margin-bottom:2px}",
    ".crowd-field input,.crowd-field textarea{font:inherit;padding:6px;border:1px solid #aab7b8;border-radius:3px;width:100%;box-sizing:border-box}",
    ".crowd-widget{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap;margin:8px 0}",
    ".crowd-main{flex:1 1 420px;min-width:0}.crowd-side{flex:0 0 220px;font-size:.92em}",
    ".crowd-header{font-weight:600;margin:4px 0 10px}",
    ".crowd-choices{display:flex;flex-direction:column;gap:6px}",
    ".crowd-choice{display:flex;align-items:center;gap:8px;padding:6px 10px;border:1px solid #d5dbdb;border-radius:4px;cursor:pointer;background:#fff}",
    ".crowd-choice.on{border-color:#0073bb;background:#f1faff}",
    ".crowd-key{font-size:.75em;color:#687078;border:1px solid #aab7b8;border-radius:3px;padding:0 4px}",
    ".crowd-swatch{display:inline-block;width:12px;height:12px;border-radius:2px;border:1px solid rgba(0,0,0,.3)}",
    ".crowd-stage{position:relative;display:inline-block;max-width:100%;user-select:none;cursor:crosshair;line-height:0}",
    ".crowd-stage img{width:100%;display:block}",
    ".crowd-stage svg,.crowd-stage canvas.overlay{position:absolute;left:0;top:0;width:100%;height:100%}",
    ".crowd-stage canvas.overlay{opacity:.55;image-rendering:pixelated}",
    ".crowd-tools{display:flex;gap:6px;flex-wrap:wrap;margin:6px 0}",
    ".crowd-instructions-toggle{background:none;border:0;color:#0073bb;cursor:pointer;padding:0;font:inherit;text-decoration:underline}",
    ".crowd-modal{position:fixed;inset:0;background:rgba(0,0,0,.4);display:flex;align-items:center;justify-content:center;z-index:1000}",
    ".crowd-modal>div{background:#fff;max-width:760px;max-height:80vh;overflow:auto;padding:16px 20px;border-radius:6px}",
    "crowd-alert{display:block}.crowd-alert{border-left:4px solid #0073bb;background:#f1faff;padding:8px 12px;margin:8px 0;position:relative}",
    ".crowd-alert.success{border-color:#1d8102;background:#f2f8f0}.crowd-alert.error{border-color:#d13212;background:#fdf3f1}",
    ".crowd-alert.warning{border-color:#ff9900;background:#fffbf0}",
    ".crowd-text{white-space:pre-wrap;line-height:2.1;padding:8px;border:1px solid #d5dbdb;border-radius:4px;background:#fff}",
    ".crowd-span{border-radius:2px;padding:1px 0;position:relative}",
    ".crowd-span button{font-size:.7em;margin-left:2px;border:0;border-radius:2px;padding:0 3px;cursor:pointer;color:#fff}",
    "full-instructions,short-instructions,classification-target{display:block}",
    "crowd-form full-instructions{display:none}"
  ].join("\n");
  var styled = false;
  function addStyle(root) {
    if (root === document) {
      if (styled) { return; }
      styled = true;
      (document.head || document.documentElement).appendChild(h("style", {text: css}));
    } else {
      root.appendChild(h("style", {text: css}));
    }
  }

  // ------------------------------------------------------------------ regions: instructions
  /* The widgets' <short-instructions> sit beside the task; <full-instructions> open on demand. */
  function instructionsPanel(el) {
    var side = h("div", {class: "crowd-side"});
    var short = el.querySelector(":scope > short-instructions");
    var full = el.querySelector(":scope > full-instructions");
    if (short) { side.appendChild(short); }
    if (full) {
      var toggle = h("button", {type: "button", class: "crowd-instructions-toggle",
                                text: full.getAttribute("header") || "View full instructions"});
      full.style.display = "none";
      toggle.addEventListener("click", function () { openModal(full.getAttribute("header") || "Instructions", full); });
      side.appendChild(h("p", {}, [toggle]));
      side.appendChild(full);
    }
    return side;
  }
  function openModal(title, contentEl) {
    var clone = contentEl.cloneNode(true);
    clone.style.display = "block";
    var close = h("button", {type: "button", class: "crowd-btn", text: "Close"});
    var box = h("div", {role: "dialog", "aria-modal": "true", "aria-label": title}, [h("h2", {text: title}), clone, close]);
    var modal = h("div", {class: "crowd-modal"}, [box]);
    function shut() { modal.remove(); document.removeEventListener("keydown", onKey); }
    function onKey(e) { if (e.key === "Escape") { shut(); } }
    close.addEventListener("click", shut);
    modal.addEventListener("click", function (e) { if (e.target === modal) { shut(); } });
    document.addEventListener("keydown", onKey);
    document.body.appendChild(modal);
    close.focus();
  }

  // ------------------------------------------------------------------ base element
  class CrowdElement extends HTMLElement {
    connectedCallback() {
      if (this._built) { return; }
      var self = this;
      whenParsed(function () { if (!self._built) { self._built = true; addStyle(document); self.build(); } });
    }
    build() {}
    get name() { return this.getAttribute("name"); }
    /* Why this element cannot be submitted yet, or null. */
    problem() { return null; }
    focusInput() { var f = this.querySelector("input,textarea,button,[tabindex]"); if (f) { f.focus(); } }
  }

  // ------------------------------------------------------------------ crowd-form
  class CrowdForm extends CrowdElement {
    build() {
      var params = query();
      var submitTo = (params.get("turkSubmitTo") || "").replace(/\/$/, "");
      var form = h("form", {method: "post", action: submitTo + "/mturk/externalSubmit", novalidate: true});
      this._assignment = h("input", {type: "hidden", name: "assignmentId", value: params.get("assignmentId") || ""});
      this._answers = h("input", {type: "hidden", name: "taskAnswers", value: ""});
      while (this.firstChild) { form.appendChild(this.firstChild); }
      form.appendChild(this._assignment);
      form.appendChild(this._answers);
      this._error = h("div", {class: "crowd-error", role: "alert"});
      var hasSubmit = form.querySelector("crowd-button[form-action=submit],button[type=submit],input[type=submit]");
      var row = h("div", {class: "crowd-submit-row"}, [this._error]);
      if (!hasSubmit) {
        row.appendChild(h("crowd-button", {"form-action": "submit", variant: "primary", text: "Submit"}));
      }
      form.appendChild(row);
      if (inPreview()) {
        form.insertBefore(h("div", {class: "crowd-preview", text: "Preview: accept the HIT to work on it."}), form.firstChild);
      }
      var self = this;
      form.addEventListener("submit", function (e) { e.preventDefault(); self.submit(); });
      this.appendChild(form);
      this.form = form;
      setTimeout(function () { document.dispatchEvent(new CustomEvent("all-crowd-elements-ready")); }, 0);
    }
    /* The answer object: each named element once, crowd elements by their value. */
    collect() {
      var answers = {};
      var named = this.form.querySelectorAll("[name]");
      for (var i = 0; i < named.length; i++) {
        var el = named[i], name = el.getAttribute("name");
        if (el === this._assignment || el === this._answers) { continue; }
        if (el.closest(".crowd-internal")) { continue; }  // inside a widget: the widget answers for it
        var tag = el.localName;
        if (tag === "crowd-checkbox" || tag === "crowd-radio-button") {
          answers[name] = answers[name] || {};
          answers[name][el.getAttribute("value") || "on"] = el.checked;
        } else if (tag.indexOf("crowd-") === 0) {
          if (el.value !== undefined) { answers[name] = el.value; }
        } else if (tag === "input" && (el.type === "checkbox" || el.type === "radio")) {
          answers[name] = answers[name] || {};
          answers[name][el.value || "on"] = el.checked;
        } else if (tag === "input" || tag === "textarea" || tag === "select") {
          answers[name] = el.value;
        }
      }
      return answers;
    }
    problems() {
      var out = [];
      var els = this.form.querySelectorAll("*");
      for (var i = 0; i < els.length; i++) {
        var el = els[i];
        if (typeof el.problem === "function" && el.localName.indexOf("crowd-") === 0) {
          var p = el.problem();
          if (p) { out.push({el: el, text: p}); }
        } else if ((el.localName === "input" || el.localName === "textarea" || el.localName === "select")
                   && !el.closest(".crowd-internal") && el.hasAttribute("required") && !el.value) {
          out.push({el: el, text: "Please fill in " + (el.getAttribute("name") || "every required field") + "."});
        }
      }
      return out;
    }
    submit() {
      if (inPreview()) { this._error.textContent = "Accept the HIT before submitting."; return; }
      var problems = this.problems();
      if (problems.length) {
        this._error.textContent = problems[0].text;
        if (problems[0].el.focusInput) { problems[0].el.focusInput(); }
        return;
      }
      // Layouts validate in onsubmit and call preventDefault (the reference's own examples do).
      var event = new Event("submit", {cancelable: true});
      if (!this.dispatchEvent(event)) { return; }
      var answer = this.collect();
      if (this.getAttribute("answer-format") === "flatten-objects") { answer = flatten(answer, "", {}); }
      this._answers.value = JSON.stringify([answer]);
      HTMLFormElement.prototype.submit.call(this.form);
    }
  }

  class CrowdButton extends CrowdElement {
    build() {
      var label = this.textContent.trim() || "Submit";
      this.textContent = "";
      var variant = this.getAttribute("variant") || (this.getAttribute("form-action") === "submit" ? "primary" : "normal");
      var button = h("button", {type: "button", class: "crowd-btn " + variant, text: label,
                                disabled: this.hasAttribute("disabled")});
      var self = this;
      button.addEventListener("click", function () {
        if (self.getAttribute("form-action") !== "submit") { return; }
        var form = self.closest("crowd-form");
        if (form) { form.submit(); }
      });
      this.appendChild(button);
    }
  }

  // ------------------------------------------------------------------ simple inputs
  class CrowdInput extends CrowdElement {
    build() {
      var type = this.getAttribute("type") || "text";
      this._input = h("input", {type: type, placeholder: this.getAttribute("placeholder"),
                                value: this.getAttribute("value"), disabled: this.hasAttribute("disabled"),
                                maxlength: this.getAttribute("max-length"), minlength: this.getAttribute("min-length"),
                                "aria-label": this.getAttribute("label") || this.name});
      var self = this;
      this._input.addEventListener("keydown", function (e) {
        var pattern = self.getAttribute("allowed-pattern");
        if (pattern && e.key.length === 1 && !new RegExp(pattern).test(e.key)) { e.preventDefault(); }
        if (e.key === "Enter") { e.preventDefault(); var f = self.closest("crowd-form"); if (f) { f.submit(); } }
      });
      this.appendChild(h("label", {class: "crowd-field crowd-internal"}, [
        this.getAttribute("label") ? h("span", {text: this.getAttribute("label")}) : null, this._input]));
      if (this.hasAttribute("auto-focus")) { this._input.focus(); }
    }
    get value() {
      if (!this._input) { return this.getAttribute("value") || ""; }
      return this.getAttribute("type") === "number" && this._input.value !== "" ? Number(this._input.value) : this._input.value;
    }
    problem() {
      if (this.hasAttribute("required") && this._input && !this._input.value.trim()) {
        return "Please fill in " + (this.getAttribute("label") || this.name || "the required field") + ".";
      }
      return null;
    }
  }

  class CrowdTextArea extends CrowdElement {
    build() {
      var initial = this.getAttribute("value") || this.textContent.trim();
      this.textContent = "";
      this._input = h("textarea", {rows: this.getAttribute("rows") || 4, placeholder: this.getAttribute("placeholder"),
                                   disabled: this.hasAttribute("disabled"), maxlength: this.getAttribute("max-length"),
                                   "aria-label": this.getAttribute("label") || this.name});
      this._input.value = initial;
      var parts = [this.getAttribute("label") ? h("span", {text: this.getAttribute("label")}) : null, this._input];
      if (this.hasAttribute("char-counter")) {
        var counter = h("small", {});
        var max = this.getAttribute("max-length");
        var update = function (input) { counter.textContent = input.value.length + (max ? " / " + max : "") + " characters"; };
        this._input.addEventListener("input", function () { update(this); });
        update(this._input);
        parts.push(counter);
      }
      this.appendChild(h("label", {class: "crowd-field crowd-internal"}, parts));
    }
    get value() { return this._input ? this._input.value : (this.getAttribute("value") || ""); }
    problem() {
      if (this.hasAttribute("required") && this._input && !this._input.value.trim()) {
        return "Please fill in " + (this.getAttribute("label") || this.name || "the text") + ".";
      }
      return null;
    }
  }

  class CrowdCheckbox extends CrowdElement {
    build() {
      var text = this.textContent.trim();
      this.textContent = "";
      this._input = h("input", {type: "checkbox", disabled: this.hasAttribute("disabled")});
      this._input.checked = this.hasAttribute("checked");
      this.appendChild(h("label", {class: "crowd-choice crowd-internal"}, [this._input, h("span", {text: text})]));
    }
    get checked() { return this._input ? this._input.checked : this.hasAttribute("checked"); }
    set checked(v) { if (this._input) { this._input.checked = !!v; } }
    problem() { return this.hasAttribute("required") && !this.checked ? "Please tick " + (this.name || "the box") + "." : null; }
  }

  class CrowdRadioGroup extends CrowdElement {
    build() { this._group = nextId("crowd-radio"); this.setAttribute("role", "radiogroup"); }
    get groupName() { if (!this._group) { this._group = nextId("crowd-radio"); } return this._group; }
    problem() {
      var buttons = this.querySelectorAll("crowd-radio-button");
      var any = Array.prototype.some.call(buttons, function (b) { return b.checked; });
      return this.hasAttribute("required") && !any ? "Please choose one option." : null;
    }
  }

  class CrowdRadioButton extends CrowdElement {
    build() {
      var text = this.textContent.trim();
      this.textContent = "";
      var group = this.closest("crowd-radio-group");
      this._input = h("input", {type: "radio", name: group ? group.groupName : nextId("crowd-radio"),
                                disabled: this.hasAttribute("disabled")});
      this._input.checked = this.hasAttribute("checked");
      this.appendChild(h("label", {class: "crowd-choice crowd-internal"}, [this._input, h("span", {text: text})]));
    }
    get checked() { return this._input ? this._input.checked : this.hasAttribute("checked"); }
  }

  // ------------------------------------------------------------------ classifiers
  /* The key that picks each choice: the label itself when every label is one distinct digit (a
   * digit "3" is key 3), else 1-9 and 0 by position (annotate.templates.shortcut_keys). */
  function shortcutKeys(names) {
    var digits = names.every(function (n) { return /^[0-9]$/.test(n); }) &&
                 names.every(function (n, i) { return names.indexOf(n) === i; });
    return names.map(function (n, i) { return digits ? n : (i < 10 ? String((i + 1) % 10) : null); });
  }

  /* A list of choices with number keys, shared by the three classifiers. */
  function choiceList(host, categories, multiple, onChange) {
    var group = nextId("crowd-choice");
    var list = h("div", {class: "crowd-choices crowd-internal", role: multiple ? "group" : "radiogroup",
                         "aria-label": host.getAttribute("header") || "choices"});
    var keys = shortcutKeys(categories.map(labelName));
    var inputs = categories.map(function (cat, i) {
      var input = h("input", {type: multiple ? "checkbox" : "radio", name: group, value: labelName(cat)});
      input.dataset.key = keys[i] || "";
      var row = h("label", {class: "crowd-choice"}, [input, h("span", {text: labelName(cat)}),
                   keys[i] ? h("span", {class: "crowd-key", "aria-hidden": "true", text: keys[i]}) : null]);
      input.addEventListener("change", function () {
        inputs.forEach(function (x) { x.parentNode.classList.toggle("on", x.checked); });
        if (onChange) { onChange(input); }
      });
      list.appendChild(row);
      return input;
    });
    document.addEventListener("keydown", function (e) {
      if (e.target && /^(INPUT|TEXTAREA)$/.test(e.target.tagName) && e.target.type !== "radio" && e.target.type !== "checkbox") { return; }
      var input = inputs.filter(function (x) { return x.dataset.key && x.dataset.key === e.key; })[0];
      if (input && !e.ctrlKey && !e.metaKey && !e.altKey && host.isConnected) {
        input.checked = multiple ? !input.checked : true;
        input.dispatchEvent(new Event("change"));
        input.focus();
      }
    });
    return {el: list, inputs: inputs};
  }

  class CrowdClassifier extends CrowdElement {
    get multiple() { return false; }
    build() {
      var categories = literalAttr(this, "categories", []);
      var target = this.querySelector(":scope > classification-target");
      var side = instructionsPanel(this);
      var main = h("div", {class: "crowd-main"}, [h("div", {class: "crowd-header", text: this.getAttribute("header") || ""})]);
      var media = this.media();
      if (media) { main.appendChild(media); }
      if (target) { main.appendChild(target); }
      var exclusion = literalAttr(this, "exclusion-category", null);
      var all = exclusion && this.multiple ? categories.concat([exclusion]) : categories;
      var self = this;
      this._choices = choiceList(this, all, this.multiple, function (input) {
        if (!exclusion || !self.multiple) { return; }
        var excl = self._choices.inputs[self._choices.inputs.length - 1];
        if (input === excl && excl.checked) { self._choices.inputs.forEach(function (x) { if (x !== excl) { x.checked = false; } }); }
        else if (input !== excl && input.checked) { excl.checked = false; }
        self._choices.inputs.forEach(function (x) { x.parentNode.classList.toggle("on", x.checked); });
      });
      this._exclusion = exclusion ? labelName(exclusion) : null;
      main.appendChild(this._choices.el);
      while (this.firstChild) { this.removeChild(this.firstChild); }
      this.appendChild(h("div", {class: "crowd-widget"}, [main, side]));
    }
    media() { return null; }
    picked() { return this._choices ? this._choices.inputs.filter(function (x) { return x.checked; }).map(function (x) { return x.value; }) : []; }
    get value() { var p = this.picked(); return p.length ? {label: p[0]} : {}; }
    problem() { return this.picked().length ? null : "Please choose a category" + (this.getAttribute("header") ? ": " + this.getAttribute("header") : "."); }
    focusInput() { if (this._choices && this._choices.inputs[0]) { this._choices.inputs[0].focus(); } }
  }

  class CrowdImageClassifier extends CrowdClassifier {
    media() { return h("img", {src: this.getAttribute("src"), alt: this.getAttribute("header") || "image to classify", style: "max-width:100%;display:block;margin-bottom:10px"}); }
  }

  class CrowdClassifierMultiSelect extends CrowdClassifier {
    get multiple() { return true; }
    get value() {
      var excl = this._exclusion;
      return {labels: this.picked().filter(function (l) { return l !== excl; })};
    }
  }

  // ------------------------------------------------------------------ image annotation
  /* An image with a label picker and an overlay; subclasses draw boxes, polygons, points or paint. */
  class ImageAnnotator extends CrowdElement {
    build() {
      this.labels = literalAttr(this, "labels", []).map(labelName);
      this.current = 0;
      this.shapes = [];
      var side = instructionsPanel(this);
      while (this.firstChild) { this.removeChild(this.firstChild); }
      this.img = h("img", {src: this.getAttribute("src"), alt: this.getAttribute("header") || "image to annotate", draggable: "false"});
      this.stage = h("div", {class: "crowd-stage crowd-internal", tabindex: "0", role: "application",
                             "aria-label": (this.getAttribute("header") || "annotation area") + " — number keys pick a label"});
      this.stage.appendChild(this.img);
      var self = this;
      var picker = h("div", {class: "crowd-choices crowd-internal", role: "radiogroup", "aria-label": "labels"});
      var group = nextId("crowd-label");
      this.labelInputs = this.labels.map(function (label, i) {
        var input = h("input", {type: "radio", name: group, value: label});
        input.checked = i === 0;
        input.addEventListener("change", function () { self.current = i; self.labelChanged(); });
        picker.appendChild(h("label", {class: "crowd-choice"}, [input,
          h("span", {class: "crowd-swatch", style: "background:" + self.color(i)}), h("span", {text: label}),
          i < 9 ? h("span", {class: "crowd-key", "aria-hidden": "true", text: String(i + 1)}) : null]));
        return input;
      });
      this.tools = h("div", {class: "crowd-tools crowd-internal"});
      this.addTools(this.tools);
      var main = h("div", {class: "crowd-main"}, [h("div", {class: "crowd-header", text: this.getAttribute("header") || ""}), this.tools, this.stage]);
      side.insertBefore(picker, side.firstChild);
      this.appendChild(h("div", {class: "crowd-widget"}, [main, side]));
      this.stage.addEventListener("keydown", function (e) {
        var n = parseInt(e.key, 10);
        if (n >= 1 && n <= Math.min(9, self.labels.length)) { self.pick(n - 1); e.preventDefault(); }
        else { self.onKey(e); }
      });
      var ready = function () {
        // Small pictures are shown enlarged (up to 720 px) so shapes can be drawn precisely.
        var w = self.img.naturalWidth;
        self.stage.style.width = Math.max(w, Math.min(720, w * 3)) + "px";
        self.overlay(); self.setInitial(); self.redraw();
      };
      if (this.img.complete && this.img.naturalWidth) { ready(); } else { this.img.addEventListener("load", ready); }
    }
    color(i) { return PALETTE[i % PALETTE.length]; }
    pick(i) { this.current = i; this.labelInputs[i].checked = true; this.labelChanged(); }
    labelChanged() {}
    addTools() {}
    onKey() {}
    overlay() {
      this.svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      this.svg.setAttribute("viewBox", "0 0 " + this.img.naturalWidth + " " + this.img.naturalHeight);
      this.svg.setAttribute("preserveAspectRatio", "none");
      this.svg.setAttribute("aria-hidden", "true");  // drawn shapes over the picture; the stage has the name
      this.stage.appendChild(this.svg);
      var self = this;
      this.svg.addEventListener("pointerdown", function (e) { self.stage.focus(); self.down(self.point(e), e); });
      this.svg.addEventListener("pointermove", function (e) { self.move(self.point(e), e); });
      window.addEventListener("pointerup", function (e) { if (self.isConnected) { self.up(self.point(e), e); } });
    }
    /* Event position in the image's own pixels, whatever size it is shown at. */
    point(e) {
      var r = this.stage.getBoundingClientRect();
      var x = (e.clientX - r.left) * this.img.naturalWidth / r.width, y = (e.clientY - r.top) * this.img.naturalHeight / r.height;
      return {x: Math.max(0, Math.min(this.img.naturalWidth, x)), y: Math.max(0, Math.min(this.img.naturalHeight, y))};
    }
    down() {} move() {} up() {}
    setInitial() {}
    svgEl(tag, attrs) {
      var el = document.createElementNS("http://www.w3.org/2000/svg", tag);
      Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
      return el;
    }
    redraw() {}
    imageProperties() { return {height: this.img.naturalHeight, width: this.img.naturalWidth}; }
    focusInput() { this.stage.focus(); }
  }

  class CrowdBoundingBox extends ImageAnnotator {
    addTools(tools) {
      var self = this;
      tools.appendChild(h("button", {type: "button", class: "crowd-btn", text: "Delete selected box",
                                     onclick: function () { self.removeSelected(); }}));
    }
    setInitial() {
      var self = this;
      literalAttr(this, "initial-value", []).forEach(function (b) {
        self.shapes.push({label: b.label, left: b.left, top: b.top, width: b.width, height: b.height});
      });
      this._initial = JSON.stringify(this.shapes);
    }
    down(p, e) {
      var hit = e.target && e.target.dataset && e.target.dataset.index;
      if (hit !== undefined) { this.selected = Number(hit); this.redraw(); return; }
      this.drag = {x0: p.x, y0: p.y, x1: p.x, y1: p.y};
    }
    move(p) { if (this.drag) { this.drag.x1 = p.x; this.drag.y1 = p.y; this.redraw(); } }
    up(p) {
      if (!this.drag) { return; }
      var d = this.drag; this.drag = null;
      var box = {label: this.labels[this.current], left: Math.round(Math.min(d.x0, p.x)), top: Math.round(Math.min(d.y0, p.y)),
                 width: Math.round(Math.abs(p.x - d.x0)), height: Math.round(Math.abs(p.y - d.y0))};
      if (box.width >= 2 && box.height >= 2) { this.shapes.push(box); this.selected = this.shapes.length - 1; }
      this.redraw();
    }
    labelChanged() {
      if (this.selected !== undefined && this.shapes[this.selected]) { this.shapes[this.selected].label = this.labels[this.current]; this.redraw(); }
    }
    onKey(e) {
      if (e.key === "Delete" || e.key === "Backspace") { this.removeSelected(); e.preventDefault(); }
      if ((e.key === "n" || e.key === "N") && !e.ctrlKey && !e.metaKey) {  // keyboard only: a new box in the middle
        var w = this.img.naturalWidth, hgt = this.img.naturalHeight, bw = Math.max(2, Math.round(w / 4)), bh = Math.max(2, Math.round(hgt / 4));
        this.shapes.push({label: this.labels[this.current], left: Math.round((w - bw) / 2), top: Math.round((hgt - bh) / 2), width: bw, height: bh});
        this.selected = this.shapes.length - 1; this.redraw(); e.preventDefault(); return;
      }
      var step = e.shiftKey ? 10 : 1, b = this.shapes[this.selected];
      var moves = {ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step]};
      if (b && moves[e.key] && e.altKey) {  // Alt: resize from the bottom-right corner
        b.width = Math.max(1, Math.min(this.img.naturalWidth - b.left, b.width + moves[e.key][0]));
        b.height = Math.max(1, Math.min(this.img.naturalHeight - b.top, b.height + moves[e.key][1]));
        this.redraw(); e.preventDefault();
      } else if (b && moves[e.key]) { b.left = Math.max(0, b.left + moves[e.key][0]); b.top = Math.max(0, b.top + moves[e.key][1]); this.redraw(); e.preventDefault(); }
    }
    removeSelected() {
      if (this.selected !== undefined && this.shapes[this.selected]) { this.shapes.splice(this.selected, 1); this.selected = undefined; this.redraw(); }
    }
    redraw() {
      if (!this.svg) { return; }
      while (this.svg.firstChild) { this.svg.removeChild(this.svg.firstChild); }
      var self = this, stroke = Math.max(1, this.img.naturalWidth / 300);
      this.shapes.forEach(function (b, i) {
        var color = self.color(Math.max(0, self.labels.indexOf(b.label)));
        var rect = self.svgEl("rect", {x: b.left, y: b.top, width: b.width, height: b.height, fill: color, "fill-opacity": i === self.selected ? 0.3 : 0.12,
                                       stroke: color, "stroke-width": i === self.selected ? stroke * 2 : stroke, "data-index": i, "class": "crowd-box"});
        rect.dataset.index = i;
        rect.dataset.label = b.label;
        self.svg.appendChild(rect);
      });
      if (this.drag) {
        var d = this.drag;
        this.svg.appendChild(this.svgEl("rect", {x: Math.min(d.x0, d.x1), y: Math.min(d.y0, d.y1), width: Math.abs(d.x1 - d.x0),
                                                 height: Math.abs(d.y1 - d.y0), fill: "none", stroke: this.color(this.current), "stroke-dasharray": "4 2", "stroke-width": stroke}));
      }
    }
    get value() {
      var out = {boundingBoxes: this.shapes.map(function (b) { return {height: b.height, label: b.label, left: b.left, top: b.top, width: b.width}; }),
                 inputImageProperties: this.img ? this.imageProperties() : {}};
      if (this._initial !== undefined && this._initial !== "[]") { out.initialValueModified = JSON.stringify(this.shapes) !== this._initial; }
      return out;
    }
    problem() { return this.shapes.length ? null : "Please draw at least one box."; }
  }

  class CrowdKeypoint extends ImageAnnotator {
    setInitial() {
      var self = this;
      literalAttr(this, "initial-value", []).forEach(function (k) { self.shapes.push({label: k.label, x: k.x, y: k.y}); });
    }
    down(p, e) {
      var hit = e.target && e.target.dataset && e.target.dataset.index;
      if (hit !== undefined) { this.shapes.splice(Number(hit), 1); }
      else { this.shapes.push({label: this.labels[this.current], x: Math.round(p.x), y: Math.round(p.y)}); }
      this.redraw();
    }
    redraw() {
      if (!this.svg) { return; }
      while (this.svg.firstChild) { this.svg.removeChild(this.svg.firstChild); }
      var self = this, r = Math.max(3, this.img.naturalWidth / 80);
      this.shapes.forEach(function (k, i) {
        var c = self.svgEl("circle", {cx: k.x, cy: k.y, r: r, fill: self.color(Math.max(0, self.labels.indexOf(k.label))), stroke: "#fff"});
        c.dataset.index = i;
        self.svg.appendChild(c);
      });
    }
    get value() {
      return {inputImageProperties: this.img ? this.imageProperties() : {},
              keypoints: this.shapes.map(function (k) { return {label: k.label, x: k.x, y: k.y}; })};
    }
    problem() { return this.shapes.length ? null : "Please place at least one point."; }
  }

  class CrowdPolygon extends ImageAnnotator {
    addTools(tools) {
      var self = this;
      tools.appendChild(h("button", {type: "button", class: "crowd-btn", text: "Undo point", onclick: function () { self.undo(); }}));
      tools.appendChild(h("button", {type: "button", class: "crowd-btn", text: "Close polygon", onclick: function () { self.close(); }}));
      tools.appendChild(h("button", {type: "button", class: "crowd-btn", text: "Delete last polygon",
                                     onclick: function () { self.shapes.pop(); self.redraw(); }}));
    }
    setInitial() {
      var self = this;
      this.open = [];
      literalAttr(this, "initial-value", []).forEach(function (p) { self.shapes.push({label: p.label, vertices: p.vertices}); });
    }
    down(p) {
      var first = this.open[0], near = Math.max(4, this.img.naturalWidth / 60);
      if (first && this.open.length >= 3 && Math.hypot(p.x - first.x, p.y - first.y) < near) { this.close(); return; }
      this.open.push({x: Math.round(p.x), y: Math.round(p.y)});
      this.redraw();
    }
    onKey(e) {
      if (e.key === "Enter") { this.close(); e.preventDefault(); }
      if (e.key === "Escape") { this.open = []; this.redraw(); }
      if ((e.ctrlKey || e.metaKey) && e.key === "z") { this.undo(); e.preventDefault(); }
    }
    undo() { this.open.pop(); this.redraw(); }
    close() {
      if (this.open.length >= 3) { this.shapes.push({label: this.labels[this.current], vertices: this.open}); }
      this.open = [];
      this.redraw();
    }
    redraw() {
      if (!this.svg) { return; }
      while (this.svg.firstChild) { this.svg.removeChild(this.svg.firstChild); }
      var self = this, stroke = Math.max(1, this.img.naturalWidth / 300);
      var pts = function (vs) { return vs.map(function (v) { return v.x + "," + v.y; }).join(" "); };
      this.shapes.forEach(function (p) {
        var color = self.color(Math.max(0, self.labels.indexOf(p.label)));
        self.svg.appendChild(self.svgEl("polygon", {points: pts(p.vertices), fill: color, "fill-opacity": 0.3, stroke: color, "stroke-width": stroke}));
      });
      if (this.open.length) {
        this.svg.appendChild(this.svgEl("polyline", {points: pts(this.open), fill: "none", stroke: this.color(this.current), "stroke-width": stroke}));
        this.open.forEach(function (v) { self.svg.appendChild(self.svgEl("circle", {cx: v.x, cy: v.y, r: stroke * 2, fill: self.color(self.current)})); });
      }
    }
    get value() {
      return {inputImageProperties: this.img ? this.imageProperties() : {},
              polygons: this.shapes.map(function (p) { return {label: p.label, vertices: p.vertices}; })};
    }
    problem() {
      if (this.open && this.open.length) { return "Please close the polygon you are drawing (Enter, or click its first point)."; }
      return this.shapes.length ? null : "Please draw at least one polygon.";
    }
  }

  /* Paint on a canvas of the image's own size: a square brush and a polygon fill, both without
   * antialiasing, so every pixel holds exactly one label's colour (or none). */
  class CrowdSemanticSegmentation extends ImageAnnotator {
    addTools(tools) {
      var self = this;
      this.mode = "brush";
      this.brush = 8;
      var modeName = nextId("crowd-tool");
      ["brush", "polygon", "eraser"].forEach(function (m) {
        var input = h("input", {type: "radio", name: modeName, value: m});
        input.checked = m === "brush";
        input.addEventListener("change", function () { self.mode = m; self.open = []; self.redraw(); });
        tools.appendChild(h("label", {class: "crowd-choice"}, [input, h("span", {text: m})]));
      });
      var size = h("input", {type: "range", min: "1", max: "40", value: "8", "aria-label": "brush size"});
      size.addEventListener("input", function () { self.brush = Number(size.value); });
      tools.appendChild(h("label", {class: "crowd-choice"}, [h("span", {text: "size"}), size]));
      tools.appendChild(h("button", {type: "button", class: "crowd-btn", text: "Close polygon", onclick: function () { self.fillOpen(); }}));
    }
    overlay() {
      ImageAnnotator.prototype.overlay.call(this);
      this.canvas = h("canvas", {class: "overlay", "aria-hidden": "true", width: this.img.naturalWidth, height: this.img.naturalHeight});
      this.stage.insertBefore(this.canvas, this.svg);
      this.ctx = this.canvas.getContext("2d");
      this.ctx.imageSmoothingEnabled = false;
      this.open = [];
      this.painted = false;
      this.cross = {x: Math.floor(this.img.naturalWidth / 2), y: Math.floor(this.img.naturalHeight / 2)};
      var self = this;
      this.stage.addEventListener("focus", function () { self.redraw(); });
      this.stage.addEventListener("blur", function () { self.redraw(); });
    }
    setInitial() {
      var init = literalAttr(this, "initial-value", null);
      if (init && init.src) {
        var self = this, img = new Image();
        img.onload = function () { self.ctx.drawImage(img, 0, 0); self.painted = true; };
        img.src = init.src;
      }
    }
    stamp(p) {
      var s = this.brush, x = Math.round(p.x - s / 2), y = Math.round(p.y - s / 2);
      if (this.mode === "eraser") { this.ctx.clearRect(x, y, s, s); return; }
      this.ctx.fillStyle = this.color(this.current);
      this.ctx.fillRect(x, y, s, s);
      this.painted = true;
    }
    line(a, b) {
      var steps = Math.max(1, Math.ceil(Math.hypot(b.x - a.x, b.y - a.y) / Math.max(1, this.brush / 2)));
      for (var i = 1; i <= steps; i++) { this.stamp({x: a.x + (b.x - a.x) * i / steps, y: a.y + (b.y - a.y) * i / steps}); }
    }
    down(p) {
      if (this.mode === "polygon") {
        var first = this.open[0];
        if (first && this.open.length >= 3 && Math.hypot(p.x - first.x, p.y - first.y) < Math.max(4, this.img.naturalWidth / 60)) { this.fillOpen(); return; }
        this.open.push({x: p.x, y: p.y}); this.redraw(); return;
      }
      this.last = p; this.stamp(p);
    }
    move(p) { if (this.last) { this.line(this.last, p); this.last = p; } }
    up() { this.last = null; }
    onKey(e) {
      if (e.key === "Enter") { this.fillOpen(); e.preventDefault(); }
      if (e.key === "Escape") { this.open = []; this.redraw(); }
      // Keyboard only: the arrows move a cross (Shift: 10 px), Space drops a polygon corner there.
      var step = e.shiftKey ? 10 : 1, c = this.cross;
      var moves = {ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step]};
      if (moves[e.key]) {
        c.x = Math.max(0, Math.min(this.img.naturalWidth - 1, c.x + moves[e.key][0]));
        c.y = Math.max(0, Math.min(this.img.naturalHeight - 1, c.y + moves[e.key][1]));
        this.redraw(); e.preventDefault();
      } else if (e.key === " ") { this.open.push({x: c.x, y: c.y}); this.redraw(); e.preventDefault(); }
    }
    /* Even-odd scanline fill of the open polygon, written into the pixels directly. */
    fillOpen() {
      var poly = this.open; this.open = [];
      if (poly.length >= 3) {
        var w = this.canvas.width, hgt = this.canvas.height, data = this.ctx.getImageData(0, 0, w, hgt);
        var hex = this.color(this.current), rgb = [1, 3, 5].map(function (i) { return parseInt(hex.slice(i, i + 2), 16); });
        for (var y = 0; y < hgt; y++) {
          var yc = y + 0.5, xs = [];
          for (var i = 0, j = poly.length - 1; i < poly.length; j = i++) {
            var a = poly[i], b = poly[j];
            if ((a.y > yc) !== (b.y > yc)) { xs.push(a.x + (yc - a.y) * (b.x - a.x) / (b.y - a.y)); }
          }
          xs.sort(function (m, n) { return m - n; });
          for (var k = 0; k + 1 < xs.length; k += 2) {
            for (var x = Math.max(0, Math.ceil(xs[k] - 0.5)); x < Math.min(w, Math.ceil(xs[k + 1] - 0.5)); x++) {
              var o = (y * w + x) * 4;
              data.data[o] = rgb[0]; data.data[o + 1] = rgb[1]; data.data[o + 2] = rgb[2]; data.data[o + 3] = 255;
            }
          }
        }
        this.ctx.putImageData(data, 0, 0);
        this.painted = true;
      }
      this.redraw();
    }
    redraw() {
      if (!this.svg) { return; }
      while (this.svg.firstChild) { this.svg.removeChild(this.svg.firstChild); }
      if (this.open && this.open.length) {
        var self = this;
        this.svg.appendChild(this.svgEl("polyline", {points: this.open.map(function (v) { return v.x + "," + v.y; }).join(" "),
                                                     fill: "none", stroke: this.color(this.current), "stroke-width": Math.max(1, this.img.naturalWidth / 200)}));
        this.open.forEach(function (v) { self.svg.appendChild(self.svgEl("circle", {cx: v.x, cy: v.y, r: Math.max(1.5, self.img.naturalWidth / 150), fill: self.color(self.current)})); });
      }
      if (this.cross && this.stage.matches(":focus")) {  // the keyboard's cross
        var c = this.cross, r = Math.max(3, this.img.naturalWidth / 40), sw = Math.max(1, this.img.naturalWidth / 300);
        this.svg.appendChild(this.svgEl("path", {d: "M" + (c.x - r) + " " + c.y + "H" + (c.x + r) + "M" + c.x + " " + (c.y - r) + "V" + (c.y + r),
                                                 stroke: "#000", "stroke-width": sw, fill: "none"}));
      }
    }
    get value() {
      var mappings = {}, self = this;
      this.labels.forEach(function (l, i) { mappings[l] = {color: self.color(i)}; });
      var png = this.canvas ? this.canvas.toDataURL("image/png").replace(/^data:image\/png;base64,/, "") : "";
      return {inputImageProperties: this.img ? this.imageProperties() : {}, labelMappings: mappings, labeledImage: {pngImageData: png}};
    }
    problem() { return this.painted ? null : "Please paint at least one region."; }
  }

  // ------------------------------------------------------------------ text spans
  /* Self-contained, as in the reference: it brings its own crowd-form and Submit button, inside
   * an open shadow root (layouts reach it as el.shadowRoot.querySelector('crowd-form').form). */
  class CrowdEntityAnnotation extends CrowdElement {
    build() {
      this.labels = literalAttr(this, "labels", []).map(function (l) {
        return typeof l === "string" ? {label: l, shortDisplayName: l, fullDisplayName: l}
          : {label: l.label, shortDisplayName: l.shortDisplayName || l.label, fullDisplayName: l.fullDisplayName || l.label};
      });
      this.text = this.getAttribute("text") || "";
      this.entities = literalAttr(this, "initial-value", []).map(function (e) { return {label: e.label, startOffset: e.startOffset, endOffset: e.endOffset}; });
      var root = this.attachShadow({mode: "open"});
      addStyle(root);
      var self = this;
      this.body = h("div", {class: "crowd-text crowd-internal", tabindex: "0", "aria-label": "text to annotate — select words (or Shift+arrows), then press a label's number"});
      var buttons = h("div", {class: "crowd-tools crowd-internal", role: "group", "aria-label": "labels"});
      this.labels.forEach(function (l, i) {
        buttons.appendChild(h("button", {type: "button", class: "crowd-btn", "data-label": l.label,
                                         style: "border-left:6px solid " + PALETTE[i % PALETTE.length],
                                         text: l.fullDisplayName + (i < 9 ? " (" + (i + 1) + ")" : ""),
                                         onmousedown: function (e) { e.preventDefault(); },  // keep the selection
                                         onclick: function () { self.mark(i); }}));
      });
      var side = instructionsPanel(this);
      var main = h("div", {class: "crowd-main"}, [h("div", {class: "crowd-header", text: this.getAttribute("header") || ""}), buttons, this.body]);
      var form = document.createElement("crowd-form");
      var holder = h("div", {class: "crowd-widget"}, [main, side]);
      form.appendChild(holder);
      // Other light-DOM content (extra questions) goes into the form too.
      while (this.firstChild) { form.appendChild(this.firstChild); }
      root.appendChild(form);
      this._form = form;
      // Keyboard only: Home/End and the arrows move a caret in the text, Shift+arrows select from it.
      this.caret = {anchor: 0, focus: 0};
      this.body.addEventListener("keydown", function (e) {
        var n = parseInt(e.key, 10), c = self.caret, len = self.text.length;
        if (n >= 1 && n <= Math.min(9, self.labels.length)) { self.mark(n - 1); e.preventDefault(); return; }
        var to = {Home: 0, End: len, ArrowLeft: c.focus - 1, ArrowRight: c.focus + 1}[e.key];
        if (to === undefined) { return; }
        c.focus = Math.max(0, Math.min(len, to));
        if (!e.shiftKey) { c.anchor = c.focus; }
        self.selectOffsets(Math.min(c.anchor, c.focus), Math.max(c.anchor, c.focus));
        e.preventDefault();
      });
      this.render();
      // The shadow form's own submit collects this element's value under its name.
      var collect = CrowdForm.prototype.collect;
      form.collect = function () { var out = collect.call(form); out[self.name || "crowd-entity-annotation"] = self.value; return out; };
      var problems = CrowdForm.prototype.problems;
      form.problems = function () { var out = problems.call(form); var p = self.problem(); if (p) { out.unshift({el: self, text: p}); } return out; };
      form.addEventListener("submit", function (e) { if (!self.dispatchEvent(new Event("submit", {cancelable: true}))) { e.preventDefault(); } });
    }
    /* Offsets of the current selection within the text (the rendered text nodes, in order). */
    selectionOffsets() {
      var root = this.shadowRoot;
      var sel = (root.getSelection && root.getSelection()) || window.getSelection();
      if (!sel || sel.rangeCount === 0 || sel.isCollapsed) { return null; }
      var range = sel.getRangeAt(0), self = this;
      function offsetOf(node, off) {
        var walker = document.createTreeWalker(self.body, NodeFilter.SHOW_TEXT, {acceptNode: function (n) {
          return n.parentNode.closest("button") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT; }});
        var total = 0, n;
        while ((n = walker.nextNode())) {
          if (n === node) { return total + off; }
          total += n.textContent.length;
        }
        return node === self.body ? (off === 0 ? 0 : self.text.length) : null;
      }
      var a = offsetOf(range.startContainer, range.startOffset), b = offsetOf(range.endContainer, range.endOffset);
      if (a === null || b === null) { return null; }
      var start = Math.min(a, b), end = Math.max(a, b);
      while (start < end && /\s/.test(this.text[start])) { start++; }  // selections grab spaces; spans should not
      while (end > start && /\s/.test(this.text[end - 1])) { end--; }
      return end > start ? {start: start, end: end} : null;
    }
    /* Select characters start..end of the text (the inverse of selectionOffsets). */
    selectOffsets(start, end) {
      var self = this, at = [];
      [start, end].forEach(function (want) {
        var walker = document.createTreeWalker(self.body, NodeFilter.SHOW_TEXT, {acceptNode: function (n) {
          return n.parentNode.closest("button") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT; }});
        var total = 0, n, last = null;
        while ((n = walker.nextNode())) {
          if (total + n.textContent.length >= want) { at.push([n, want - total]); return; }
          total += n.textContent.length; last = n;
        }
        at.push(last ? [last, last.textContent.length] : [self.body, 0]);
      });
      var range = document.createRange();
      range.setStart(at[0][0], at[0][1]);
      range.setEnd(at[1][0], at[1][1]);
      var sel = (this.shadowRoot.getSelection && this.shadowRoot.getSelection()) || window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
    mark(i) {
      var o = this.selectionOffsets();
      if (!o) { return; }
      this.entities = this.entities.filter(function (e) { return e.endOffset <= o.start || e.startOffset >= o.end; });
      this.entities.push({label: this.labels[i].label, startOffset: o.start, endOffset: o.end});
      this.entities.sort(function (a, b) { return a.startOffset - b.startOffset; });
      var sel = (this.shadowRoot.getSelection && this.shadowRoot.getSelection()) || window.getSelection();
      if (sel) { sel.removeAllRanges(); }
      this.render();
    }
    render() {
      var body = this.body, text = this.text, pos = 0, self = this;
      body.textContent = "";
      this.entities.forEach(function (e, k) {
        if (e.startOffset > pos) { body.appendChild(document.createTextNode(text.slice(pos, e.startOffset))); }
        var i = Math.max(0, self.labels.map(function (l) { return l.label; }).indexOf(e.label)), color = PALETTE[i % PALETTE.length];
        var span = h("span", {class: "crowd-span", "data-label": e.label, style: "background:" + color + "33;border-bottom:2px solid " + color},
                     [text.slice(e.startOffset, e.endOffset)]);
        span.appendChild(h("button", {type: "button", style: "background:" + color, "aria-label": "remove " + e.label,
                                      text: (self.labels[i] ? self.labels[i].shortDisplayName : e.label) + " ×",
                                      onclick: function () { self.entities.splice(k, 1); self.render(); }}));
        body.appendChild(span);
        pos = e.endOffset;
      });
      if (pos < text.length) { body.appendChild(document.createTextNode(text.slice(pos))); }
    }
    get value() {
      return {entities: (this.entities || []).map(function (e) { return {endOffset: e.endOffset, label: e.label, startOffset: e.startOffset}; })};
    }
    problem() { return this.entities && this.entities.length ? null : "Please label at least one span of the text."; }
    focusInput() { this.body.focus(); }
  }

  // ------------------------------------------------------------------ page furniture
  class CrowdInstructions extends CrowdElement {
    build() {
      var summary = this.querySelector(":scope > short-summary");
      var detail = h("div", {});
      ["detailed-instructions", "positive-example", "negative-example"].forEach(function (tag) {
        var part = this.querySelector(":scope > " + tag);
        if (part) {
          var title = {"detailed-instructions": "Instructions", "positive-example": "Good example", "negative-example": "Bad example"}[tag];
          detail.appendChild(h("h3", {text: title}));
          detail.appendChild(part);
        }
      }, this);
      while (this.firstChild) { this.removeChild(this.firstChild); }
      if (summary) { this.appendChild(summary); }
      var self = this;
      var open = h("button", {type: "button", class: this.getAttribute("link-type") === "button" ? "crowd-btn" : "crowd-instructions-toggle",
                              text: this.getAttribute("link-text") || "Instructions",
                              onclick: function () { openModal(self.getAttribute("link-text") || "Instructions", detail); }});
      this.appendChild(open);
    }
  }

  class CrowdAlert extends CrowdElement {
    build() {
      var box = h("div", {class: "crowd-alert " + (this.getAttribute("type") || "info"), role: "alert"});
      while (this.firstChild) { box.appendChild(this.firstChild); }
      if (this.hasAttribute("dismissible")) {
        var self = this;
        box.appendChild(h("button", {type: "button", "aria-label": "dismiss", text: "×", style: "position:absolute;right:6px;top:4px;border:0;background:none;cursor:pointer",
                                     onclick: function () { self.remove(); }}));
      }
      this.appendChild(box);
    }
  }

  var elements = {
    "crowd-form": CrowdForm, "crowd-button": CrowdButton, "crowd-input": CrowdInput, "crowd-text-area": CrowdTextArea,
    "crowd-checkbox": CrowdCheckbox, "crowd-radio-group": CrowdRadioGroup, "crowd-radio-button": CrowdRadioButton,
    "crowd-classifier": CrowdClassifier, "crowd-image-classifier": CrowdImageClassifier,
    "crowd-classifier-multi-select": CrowdClassifierMultiSelect, "crowd-bounding-box": CrowdBoundingBox,
    "crowd-semantic-segmentation": CrowdSemanticSegmentation, "crowd-entity-annotation": CrowdEntityAnnotation,
    "crowd-keypoint": CrowdKeypoint, "crowd-polygon": CrowdPolygon, "crowd-instructions": CrowdInstructions,
    "crowd-alert": CrowdAlert
  };
  // Parents before children, so a radio button finds its group and a form holds built widgets.
  Object.keys(elements).forEach(function (tag) { customElements.define(tag, elements[tag]); });
  window.annotateCrowdElements = {parseLiteral: parseLiteral, palette: PALETTE, elements: Object.keys(elements)};
})();
