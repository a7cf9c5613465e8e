// The transparency log's checks, in the visitor's browser (/log/verify; docs/web.md).
//
// Fetches the latest checkpoint, the public key and an entry's inclusion proof from the
// API on this same site, puts them in the page's fields, and checks what the fields hold:
//   1. the public key: 32 bytes of base64; its fingerprint (SHA-256 of the raw key) and
//      its signed-note key id (first 4 bytes of SHA-256(name || "\n" || 0x01 || key));
//   2. the signed note (C2SP signed-note, tlog-checkpoint): the text up to the last blank
//      line, then signature lines "— <key name> <base64(key id || signature)>", the
//      text being "<origin>\n<tree size>\n<base64 root>\n" (extension lines allowed);
//   3. the Ed25519 signature of the text's exact UTF-8 bytes (WebCrypto);
//   4. RFC 9162 §2.1.3.2: the root recomputed from the leaf hash, its index and the
//      proof (SHA-256 by WebCrypto), compared with the checkpoint's root.
// The messages come from the page (#log-messages), in its language. No dependency.
"use strict";

(() => {
  const app = document.getElementById("log-verify");
  if (!app) return;
  const $ = (id) => document.getElementById(id);

  // --- messages -------------------------------------------------------------------------
  const MESSAGES = {};
  for (const item of document.querySelectorAll("#log-messages [data-key]")) {
    MESSAGES[item.dataset.key] = item.textContent;
  }
  const say = (key, params = {}) => {
    let text = MESSAGES[key] || key;
    for (const [name, value] of Object.entries(params)) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  };

  /** A check that failed: its message key and parameters. */
  class Refusal extends Error {
    constructor(key, params = {}) {
      super(key);
      this.key = key;
      this.params = params;
    }
  }

  // --- bytes ----------------------------------------------------------------------------
  const HASH_SIZE = 32;
  const ED25519 = 0x01;
  const DASH = "\u2014";
  const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  const HEX_HASH = /^[0-9a-fA-F]{64}$/;
  const DECIMAL = /^(?:0|[1-9][0-9]*)$/;

  /** Strict base64 (standard alphabet, padded, no white space), else null. */
  const fromBase64 = (text) => {
    if (!BASE64.test(text)) return null;
    const raw = atob(text);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  };
  const fromHex = (text) => {
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
    return out;
  };
  const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const utf8 = (text) => new TextEncoder().encode(text);
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(0x01), left, right));
  const grouped = (hex) => hex.match(/.{1,4}/g).join(" ");

  // --- 1. the public key ----------------------------------------------------------------
  async function readKey(name, publicKey) {
    if (!name || /[\s+]/.test(name)) throw new Refusal("key_name_bad");
    const raw = fromBase64(publicKey);
    if (raw === null || raw.length !== 32) throw new Refusal("key_bad");
    const keyId = (await sha256(concat(utf8(name + "\n"), Uint8Array.of(ED25519), raw))).slice(0, 4);
    const fingerprint = grouped(toHex(await sha256(raw)));
    let cryptoKey;
    try {
      cryptoKey = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
    } catch (error) {
      if (error && error.name === "NotSupportedError") throw new Refusal("no_ed25519");
      throw new Refusal("key_bad");
    }
    return { name, raw, keyId, fingerprint, cryptoKey };
  }

  // --- 2. the signed note ---------------------------------------------------------------
  /** The note's signed text (exact) and its signature lines, as signed-note defines. */
  function splitNote(note) {
    const blank = note.lastIndexOf("\n\n");
    if (blank < 0) throw new Refusal("note_no_blank");
    const text = note.slice(0, blank + 1);
    const block = note.slice(blank + 2);
    if (!block.endsWith("\n")) throw new Refusal("note_no_newline");
    const signatures = block
      .slice(0, -1)
      .split("\n")
      .map((line, i) => {
        const parts = line.split(" ");
        const blob = parts.length === 3 && parts[0] === DASH ? fromBase64(parts[2]) : null;
        if (blob === null) throw new Refusal("note_bad_line", { line: i + 1 });
        return { name: parts[1], blob };
      });
    return { text, signatures };
  }

  /** Origin, tree size (BigInt) and root of a checkpoint's text. */
  function parseCheckpoint(text) {
    const lines = text.split("\n");
    if (lines.length < 4 || lines[lines.length - 1] !== "") throw new Refusal("note_lines");
    const [origin, sizeText, rootText] = lines;
    if (!DECIMAL.test(sizeText)) throw new Refusal("note_size", { size: sizeText });
    const root = fromBase64(rootText);
    if (root === null || root.length !== HASH_SIZE) throw new Refusal("note_root");
    return { origin, size: BigInt(sizeText), root };
  }

  // --- 3. the signature -----------------------------------------------------------------
  async function checkSignature(split, key) {
    const params = { name: key.name, key_id: toHex(key.keyId) };
    const line = split.signatures.find(
      (s) => s.name === key.name && s.blob.length >= 4 && equal(s.blob.slice(0, 4), key.keyId),
    );
    if (!line) throw new Refusal("sig_missing", params);
    if (line.blob.length !== 4 + 64) throw new Refusal("sig_length");
    const ok = await crypto.subtle.verify(
      { name: "Ed25519" },
      key.cryptoKey,
      line.blob.slice(4),
      utf8(split.text),
    );
    if (!ok) throw new Refusal("sig_bad", params);
    return params;
  }

  // --- 4. the inclusion proof (RFC 9162 §2.1.3.2) ---------------------------------------
  function readProof(indexText, leafText, proofText) {
    if (!DECIMAL.test(indexText.trim())) throw new Refusal("incl_index");
    if (!HEX_HASH.test(leafText.trim())) throw new Refusal("incl_leaf");
    const hashes = proofText.split("\n").map((h) => h.trim()).filter((h) => h !== "");
    hashes.forEach((h, i) => {
      if (!HEX_HASH.test(h)) throw new Refusal("incl_hash", { number: i + 1 });
    });
    return {
      index: BigInt(indexText.trim()),
      leaf: fromHex(leafText.trim()),
      path: hashes.map(fromHex),
    };
  }

  /** The root the proof leads to, step by step as the RFC writes it. */
  async function rootFromProof(leaf, index, size, path) {
    const params = { index, size };
    // 1. leaf_index must be below tree_size.
    if (index >= size) throw new Refusal("incl_outside", params);
    // 2.-3.
    let fn = index;
    let sn = size - 1n;
    let r = leaf;
    // 4.
    for (const p of path) {
      if (sn === 0n) throw new Refusal("incl_long", params); // a.
      if ((fn & 1n) === 1n || fn === sn) {
        // b. p is a left sibling, or the node is on the tree's right edge
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; // c.
      sn >>= 1n;
    }
    // 5. the path ends at the root.
    if (sn !== 0n) throw new Refusal("incl_short", params);
    return r;
  }

  // --- the page -------------------------------------------------------------------------
  const fields = {
    seq: $("seq"),
    keyName: $("key-name"),
    publicKey: $("public-key"),
    note: $("note"),
    leafIndex: $("leaf-index"),
    leafHash: $("leaf-hash"),
    proof: $("proof"),
  };
  const status = $("log-status");
  const STEPS = ["key", "note", "signature", "inclusion"];
  let fetched = null;
  let currentSeq = null;

  const show = (step, state, text, data = {}) => {
    const item = $("step-" + step);
    item.dataset.state = state;
    for (const [name, value] of Object.entries(data)) item.dataset[name] = value;
    item.querySelector(".result").textContent = text;
  };
  const setStatus = (state, text) => {
    status.dataset.state = state;
    status.textContent = text;
  };

  /** Runs one step: shows its result, returns its value (undefined if it was refused). */
  async function step(name, work, results) {
    try {
      const [value, text, data] = await work();
      show(name, "ok", text, data);
      return value;
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      show(name, "refused", say(error.key, error.params));
      results.refused += 1;
      if (error.key === "no_ed25519") results.unsupported = true;
      return undefined;
    }
  }
  const skip = (name, reason) => show(name, "skipped", say("skipped", { reason: say(reason) }));

  /** Checks what the fields hold now. */
  async function check() {
    setStatus("pending", say("checking"));
    for (const name of STEPS) {
      const item = $("step-" + name);
      delete item.dataset.root;
    }
    const results = { refused: 0, unsupported: false };
    const key = await step("key", async () => {
      const k = await readKey(fields.keyName.value, fields.publicKey.value.trim());
      return [k, say("key_ok", { fingerprint: k.fingerprint, key_id: toHex(k.keyId) }), {}];
    }, results);
    const split = await step("note", async () => {
      const s = splitNote(fields.note.value);
      const cp = parseCheckpoint(s.text);
      const text = say("note_ok", { origin: cp.origin, size: cp.size, root: toHex(cp.root) });
      return [{ ...s, checkpoint: cp }, text, {}];
    }, results);
    // The signature is checked even when the text is not a checkpoint: it covers the text.
    let splitForSignature = split;
    if (!split) {
      try {
        splitForSignature = splitNote(fields.note.value);
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
      }
    }
    if (!key) skip("signature", "key_unusable");
    else if (!splitForSignature) skip("signature", "note_unreadable");
    else {
      await step("signature", async () => {
        const params = await checkSignature(splitForSignature, key);
        // A checkpoint names its log first: the key signs for that origin only.
        const origin = split ? split.checkpoint.origin : null;
        if (origin !== null && origin !== key.name) {
          throw new Refusal("note_origin", { origin, name: key.name });
        }
        return [null, say("sig_ok", params), {}];
      }, results);
    }
    const cp = split ? split.checkpoint : null;
    let proved = false;
    if (!cp) skip("inclusion", "checkpoint_unreadable");
    else if (cp.size === 0n && fetched && fetched.empty) skip("inclusion", "no_entry");
    else {
      proved = await step("inclusion", async () => {
        const proof = readProof(fields.leafIndex.value, fields.leafHash.value, fields.proof.value);
        const root = await rootFromProof(proof.leaf, proof.index, cp.size, proof.path);
        const computed = toHex(root);
        if (!equal(root, cp.root)) {
          throw new Refusal("incl_mismatch", { computed, expected: toHex(cp.root) });
        }
        const text = say("incl_ok", { index: proof.index, count: proof.path.length, root: computed });
        return [true, text, { root: computed }];
      }, results);
    }
    if (results.unsupported) setStatus("refused", say("no_ed25519"));
    else if (results.refused) setStatus("refused", say("some_refused", { count: results.refused }));
    else if (proved) setStatus("ok", say("all_ok", { seq: currentSeq === null ? "" : currentSeq }));
    else setStatus("ok", say("all_ok_no_entry"));
  }

  async function getJSON(url, what) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const code = body && body.error ? body.error.code : "";
      const message = body && body.error ? body.error.message : response.statusText;
      const failure = new Error(message);
      failure.status = response.status;
      failure.code = code;
      failure.what = what;
      throw failure;
    }
    return body;
  }

  function fill(values) {
    fields.keyName.value = values.keyName;
    fields.publicKey.value = values.publicKey;
    fields.note.value = values.note;
    fields.leafIndex.value = values.leafIndex;
    fields.leafHash.value = values.leafHash;
    fields.proof.value = values.proof;
  }

  /** Fetches the checkpoint, the key and entry ``seq``'s proof, then checks them. */
  async function fetchAndCheck() {
    const seqText = fields.seq.value.trim();
    if (seqText !== "" && !DECIMAL.test(seqText)) {
      setStatus("refused", say("seq_bad"));
      fields.seq.focus();
      return;
    }
    setStatus("pending", say("fetching"));
    try {
      const [cp, pk] = await Promise.all([
        getJSON("/v1/log/checkpoint", "/v1/log/checkpoint"),
        getJSON("/v1/log/public-key", "/v1/log/public-key"),
      ]);
      const values = {
        keyName: pk.origin,
        publicKey: pk.public_key,
        note: cp.signed_note,
        leafIndex: "",
        leafHash: "",
        proof: "",
      };
      const empty = cp.tree_size === 0;
      currentSeq = null;
      if (!empty && seqText !== "") {
        const query = new URLSearchParams({ seq: seqText, tree_size: String(cp.tree_size) });
        const url = "/v1/log/proof/inclusion?" + query.toString();
        const proof = await getJSON(url, "/v1/log/proof/inclusion");
        values.leafIndex = String(proof.leaf_index);
        values.leafHash = proof.leaf_hash;
        values.proof = proof.proof.join("\n");
        currentSeq = proof.seq;
      }
      fetched = { ...values, empty };
      fill(values);
    } catch (error) {
      if (error.status === 404 && error.what === "/v1/log/proof/inclusion") {
        setStatus("refused", say("fetch_missing", { seq: seqText }));
      } else {
        const params = {
          what: error.what || "",
          status: error.status === undefined ? "-" : error.status,
          message: error.message,
        };
        setStatus("refused", say("fetch_failed", params));
      }
      return;
    }
    await check();
  }

  // --- start ----------------------------------------------------------------------------
  app.hidden = false;
  if (!window.isSecureContext || !window.crypto || !window.crypto.subtle) {
    // The page says why and keeps the command-line way in view.
    setStatus("refused", say("no_crypto"));
    $("fetch").disabled = true;
    $("check").disabled = true;
    $("restore").disabled = true;
    return;
  }
  $("log-nojs").hidden = true;
  $("log-fetch").addEventListener("submit", (event) => {
    event.preventDefault();
    fetchAndCheck();
  });
  $("log-inputs").addEventListener("submit", (event) => {
    event.preventDefault();
    check();
  });
  $("restore").addEventListener("click", () => {
    if (fetched) {
      fill(fetched);
      check();
    }
  });
  fetchAndCheck();
})();
