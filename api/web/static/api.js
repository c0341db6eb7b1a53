// The API client: JSON calls, uploads with progress, the answer stream; the session cookie and CSRF token.

const CSRF_KEY = "compagnon.csrf";
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
// A wrong password is an answer to show on the login form, not a lost session.
const NO_REDIRECT = new Set(["/api/auth/login"]);

/** An error answered by the API: its HTTP status, stable `error_code` and detail. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** Keep the CSRF token returned by the login for every later unsafe request of this tab. */
export function setCsrfToken(token) {
  if (token) {
    sessionStorage.setItem(CSRF_KEY, token);
  } else {
    sessionStorage.removeItem(CSRF_KEY);
  }
}

function url(path, query) {
  const target = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") {
      target.searchParams.set(name, String(value));
    }
  }
  return target.pathname + target.search;
}

function headers(method, json) {
  const result = { Accept: json ? "application/json" : "*/*" };
  const token = sessionStorage.getItem(CSRF_KEY);
  if (UNSAFE.has(method) && token) {
    result["X-CSRF-Token"] = token;
  }
  return result;
}

function unauthorized(path) {
  if (NO_REDIRECT.has(path)) {
    return;
  }
  setCsrfToken(null);
  window.dispatchEvent(new CustomEvent("compagnon:signed-out"));
}

async function failure(response, path) {
  let code = "unknown";
  let detail = response.statusText;
  try {
    const body = await response.json();
    code = body.error_code || code;
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    // Not the API's error shape (a proxy's page): the status says enough.
  }
  if (response.status === 401) {
    unauthorized(path);
  }
  return new ApiError(response.status, code, detail);
}

async function send(method, path, { query, body, as = "json", signal } = {}) {
  const init = { method, headers: headers(method, as === "json"), credentials: "same-origin", signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (error) {
    if (error.name === "AbortError") {
      throw error;
    }
    throw new ApiError(0, "network", error.message);
  }
  if (!response.ok) {
    throw await failure(response, path);
  }
  if (response.status === 204) {
    return null;
  }
  return as === "json" ? response.json() : response.text();
}

function parseEvent(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      continue;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") {
      name = value;
    } else if (field === "data") {
      data.push(value);
    }
  }
  if (!data.length) {
    return null;
  }
  const text = data.join("\n");
  try {
    return { name, data: JSON.parse(text) };
  } catch {
    return { name, data: text };
  }
}

export const api = {
  /** GET a JSON resource; `query` entries that are empty are left out. */
  get(path, query, options = {}) {
    return send("GET", path, { ...options, query });
  },
  post(path, body, options = {}) {
    return send("POST", path, { ...options, body });
  },
  put(path, body, options = {}) {
    return send("PUT", path, { ...options, body });
  },
  patch(path, body, options = {}) {
    return send("PATCH", path, { ...options, body });
  },
  del(path, options = {}) {
    return send("DELETE", path, options);
  },
  /** GET a text resource (CSV exports). */
  text(path, query, options = {}) {
    return send("GET", path, { ...options, query, as: "text" });
  },

  /** POST a form (files) with XMLHttpRequest; `onProgress(event)` gets each upload ProgressEvent. */
  upload(path, formData, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", path);
      request.withCredentials = true;
      for (const [name, value] of Object.entries(headers("POST", true))) {
        request.setRequestHeader(name, value);
      }
      if (onProgress) {
        request.upload.addEventListener("progress", onProgress);
      }
      request.addEventListener("load", () => {
        let body = null;
        try {
          body = request.responseText ? JSON.parse(request.responseText) : null;
        } catch {
          body = null;
        }
        if (request.status >= 200 && request.status < 300) {
          resolve(body);
          return;
        }
        if (request.status === 401) {
          unauthorized(path);
        }
        const detail = body && typeof body.detail === "string" ? body.detail : request.statusText;
        reject(new ApiError(request.status, (body && body.error_code) || "unknown", detail));
      });
      request.addEventListener("error", () => reject(new ApiError(0, "network", "the upload failed")));
      request.addEventListener("abort", () => reject(new ApiError(0, "aborted", "the upload was cancelled")));
      request.send(formData);
    });
  },

  /** POST JSON and read the server-sent events of the answer: `onEvent(name, data)` for each, in order. */
  async stream(path, body, onEvent, { signal } = {}) {
    const init = {
      method: "POST",
      headers: { ...headers("POST", false), Accept: "text/event-stream", "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
      signal,
    };
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error.name === "AbortError") {
        throw error;
      }
      throw new ApiError(0, "network", error.message);
    }
    if (!response.ok) {
      throw await failure(response, path);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      buffer += value.replace(/\r\n?/g, "\n");
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) {
          onEvent(event.name, event.data);
        }
        end = buffer.indexOf("\n\n");
      }
    }
    const last = parseEvent(buffer.trim());
    if (last) {
      onEvent(last.name, last.data);
    }
  },
};
