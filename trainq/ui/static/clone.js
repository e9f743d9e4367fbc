// Clone: a submit form prefilled with a job's spec (POST /train with the CSRF token),
// then the new job's page.

import { send } from "./api.js";
import { byId, showError } from "./dom.js";

// The fields with inputs of their own; the rest of the spec is the JSON box.
const OWN_INPUTS = ["name", "epochs", "batch_size", "learning_rate", "priority"];
// Never copied: a new job needs a key of its own.
const NOT_COPIED = ["idempotency_key"];

export class CloneForm {
  constructor() {
    this.dialog = byId("clone-dialog");
    this.form = byId("clone-form");
    this.spec = null;
    byId("clone-open").addEventListener("click", () => this.open());
    byId("clone-cancel").addEventListener("click", () => this.dialog.close());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  /** The job whose spec the form starts from. */
  setSpec(spec) {
    this.spec = spec;
  }

  open() {
    if (!this.spec) return;
    const spec = this.spec;
    byId("clone-name").value = spec.name || "";
    byId("clone-epochs").value = spec.epochs;
    byId("clone-batch-size").value = spec.batch_size;
    byId("clone-learning-rate").value = spec.learning_rate;
    byId("clone-priority").value = spec.priority || "normal";
    byId("clone-spec").value = JSON.stringify(rest(spec), null, 2);
    showError("clone-error", null);
    this.dialog.showModal();
  }

  async submit() {
    let body;
    try {
      body = this.body();
    } catch (error) {
      showError("clone-error", error);
      return;
    }
    const button = byId("clone-submit");
    button.disabled = true;
    try {
      const accepted = await send("POST", "/train", body);
      location.assign(`/ui/jobs/${encodeURIComponent(accepted.id)}`);
    } catch (error) {
      showError("clone-error", error);
    } finally {
      button.disabled = false;
    }
  }

  body() {
    const text = byId("clone-spec").value.trim();
    let others = {};
    if (text) {
      try {
        others = JSON.parse(text);
      } catch (error) {
        throw new Error(`the JSON box is not JSON: ${error.message}`);
      }
      if (typeof others !== "object" || others === null || Array.isArray(others)) {
        throw new Error("the JSON box must hold an object: {\"field\": value, ...}");
      }
    }
    const body = { ...others };
    const name = byId("clone-name").value.trim();
    if (name) body.name = name;
    body.epochs = whole(byId("clone-epochs").value, "epochs");
    body.batch_size = whole(byId("clone-batch-size").value, "batch_size");
    body.learning_rate = Number(byId("clone-learning-rate").value);
    body.priority = byId("clone-priority").value;
    return body;
  }
}

/** The spec without the fields that have inputs, what is never copied, and what is empty. */
function rest(spec) {
  const out = {};
  for (const [key, value] of Object.entries(spec)) {
    if (OWN_INPUTS.includes(key) || NOT_COPIED.includes(key)) continue;
    if (value === null || value === undefined) continue;
    if (Array.isArray(value) && !value.length) continue;
    if (typeof value === "object" && !Array.isArray(value) && !Object.keys(value).length) continue;
    out[key] = value;
  }
  return out;
}

function whole(text, field) {
  const value = Number(text);
  if (!Number.isInteger(value)) throw new Error(`${field}: a whole number, please`);
  return value;
}
