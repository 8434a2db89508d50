/* Passkeys (WebAuthn) on identity's pages: no inline script, no other origin (the pages'
 * CSP: script-src 'self'; connect-src 'self').
 *
 * Each element with data-passkey names a ceremony; its data-* attributes carry the URLs,
 * the login session's CSRF token (sent as X-CSRF-Token) and translated messages:
 *   data-passkey="register"  a form (#passkey-add): options from data-options-url, then
 *                            navigator.credentials.create, the answer put in the form's
 *                            hidden "credential" field and the form submitted.
 *   data-passkey="sign-in"   a button: options from data-options-url, navigator.credentials
 *                            .get, the answer posted to data-url; with data-conditional,
 *                            also offered in the username field's autofill
 *                            (mediation "conditional") when the browser can.
 */
(function () {
  "use strict";

  function toBuffer(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var padded = base64 + "===".slice((base64.length + 3) % 4);
    var binary = atob(padded);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return Object.assign({}, d, { id: toBuffer(d.id) });
    });
  }

  function creationOptions(json) {
    return Object.assign({}, json, {
      challenge: toBuffer(json.challenge),
      user: Object.assign({}, json.user, { id: toBuffer(json.user.id) }),
      excludeCredentials: descriptors(json.excludeCredentials)
    });
  }

  function requestOptions(json) {
    return Object.assign({}, json, {
      challenge: toBuffer(json.challenge),
      allowCredentials: descriptors(json.allowCredentials)
    });
  }

  // PublicKeyCredential.toJSON() where the browser has it, else the same by hand.
  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") {
      try { return credential.toJSON(); } catch (ignored) { /* built below */ }
    }
    var r = credential.response;
    var response = { clientDataJSON: toBase64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      if (r.userHandle) { response.userHandle = toBase64url(r.userHandle); }
    }
    return {
      id: credential.id, rawId: toBase64url(credential.rawId), type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(), response: response
    };
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data.detail || data.title || String(response.status));
          error.problem = data;
          throw error;
        }
        return data;
      });
    });
  }

  function say(element, text) {
    var status = element.querySelector("[data-passkey-status]") ||
      document.getElementById(element.getAttribute("data-status") || "");
    if (status) {
      status.textContent = text;
      status.hidden = !text;
    }
  }

  // A refused call that names the login page (an expired sign-in) goes there.
  function leaveIfSignInNeeded(error) {
    if (error && error.problem && error.problem.login) {
      window.location.assign(error.problem.login);
      return true;
    }
    return false;
  }

  function failed(element, error) {
    if (leaveIfSignInNeeded(error)) { return; }
    // The person cancelled or the authenticator refused: not worth an alarm.
    var cancelled = error && (error.name === "NotAllowedError" || error.name === "AbortError");
    say(element, cancelled ? element.getAttribute("data-msg-cancelled")
                           : (error && error.problem && error.problem.detail) ||
                             element.getAttribute("data-msg-failed"));
  }

  function register(form) {
    form.addEventListener("submit", function (event) {
      if (form.elements.credential.value) { return; }  // the answer is in: submit it
      event.preventDefault();
      say(form, "");
      post(form.getAttribute("data-options-url"), form.getAttribute("data-csrf"))
        .then(function (options) {
          return navigator.credentials.create({ publicKey: creationOptions(options) });
        })
        .then(function (credential) {
          form.elements.credential.value = JSON.stringify(credentialJSON(credential));
          form.submit();
        })
        .catch(function (error) { failed(form, error); });
    });
  }

  function signIn(box) {
    var button = box.querySelector("button");
    var conditional = null;  // the pending autofill request, aborted by a click

    function ceremony(mediation) {
      return post(box.getAttribute("data-options-url"), box.getAttribute("data-csrf"))
        .then(function (options) {
          var request = { publicKey: requestOptions(options) };
          if (mediation) {
            conditional = new AbortController();
            request.mediation = mediation;
            request.signal = conditional.signal;
          }
          return navigator.credentials.get(request);
        })
        .then(function (credential) {
          return post(box.getAttribute("data-url"), box.getAttribute("data-csrf"),
                      { credential: credentialJSON(credential),
                        next: box.getAttribute("data-next") });
        })
        .then(function (answer) { window.location.assign(answer.redirect); });
    }

    button.addEventListener("click", function () {
      if (conditional) { conditional.abort(); conditional = null; }
      say(box, "");
      button.disabled = true;
      ceremony(null).catch(function (error) {
        button.disabled = false;
        failed(box, error);
      });
    });

    if (box.hasAttribute("data-conditional") &&
        typeof PublicKeyCredential.isConditionalMediationAvailable === "function") {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available) { return; }
        ceremony("conditional").catch(function (error) {
          if (error && error.name !== "AbortError") { failed(box, error); }
        });
      });
    }
  }

  function start() {
    var supported = typeof window.PublicKeyCredential === "function" &&
      navigator.credentials && typeof navigator.credentials.create === "function";
    document.querySelectorAll("[data-passkey]").forEach(function (element) {
      if (!supported) { return; }  // stays hidden: the other ways in still work
      element.hidden = false;
      if (element.getAttribute("data-passkey") === "register") { register(element); }
      else { signIn(element); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
