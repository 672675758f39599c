/* The intake portal page: LHC-Forms renders the form; every answer (debounced) is
 * screened as an in-progress QuestionnaireResponse; finishing screens it completed and,
 * when the portal has a clinic FHIR server, sends it there. Plain ES5-style, no build. */
(function () {
  "use strict";

  var DEBOUNCE_MS = 300;
  var ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl";
  var RADIO_MAX_OPTIONS = 6;

  var config = JSON.parse(document.getElementById("portal-config").textContent);
  var formEl = document.getElementById("form");
  var $ = function (id) { return document.getElementById(id); };

  var identifier = { system: "urn:ietf:rfc:3986", value: "urn:uuid:" + uuid4() };
  var timer = null;
  var sent = 0;       // number of the latest screen request sent
  var shown = 0;      // number of the latest screen answer shown
  var lastItems = "";  // the answers last screened (an unchanged form is not sent again)
  var finished = false;
  var lastResponse = null;

  function uuid4() {
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); });
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") +
      "-" + h.slice(8, 10).join("") + "-" + h.slice(10).join("");
  }

  /* Presentation only: short answer lists as radio buttons, not drop-downs (the
   * FHIR itemControl extension; LHC-Forms' defaultAnswerLayout does not reach FHIR forms). */
  function radioButtons(items) {
    (items || []).forEach(function (item) {
      var options = item.answerOption || [];
      var controlled = (item.extension || []).some(function (e) { return e.url === ITEM_CONTROL; });
      if (item.type === "choice" && options.length && options.length <= RADIO_MAX_OPTIONS &&
          !controlled) {
        item.extension = (item.extension || []).concat([{
          url: ITEM_CONTROL,
          valueCodeableConcept: { coding: [{
            system: "http://hl7.org/fhir/questionnaire-item-control", code: "radio-button" }] }
        }]);
      }
      radioButtons(item.item);
    });
  }

  /* LHC-Forms 40 marks the chosen radio on its label only; keep the input's own
   * checked state true to it, so screen readers announce the choice. */
  function syncRadios() {
    var inputs = formEl.querySelectorAll("label.ant-radio-wrapper input[type=radio]");
    Array.prototype.forEach.call(inputs, function (input) {
      input.checked = input.closest("label").classList.contains("ant-radio-wrapper-checked");
    });
  }

  function subject() {
    var name = $("patient-name").value.trim();
    var born = $("patient-birthdate").value;
    var s = { display: name + (born ? " (born " + born + ")" : "") };
    if (config.patient) { s.reference = config.patient; }
    return s;
  }

  function response(status) {
    var qr = LForms.Util.getFormFHIRData("QuestionnaireResponse", "R4", formEl);
    qr.status = status;
    qr.identifier = identifier;
    if (status === "completed") { qr.subject = subject(); } else { delete qr.subject; }
    return qr;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/fhir+json", "X-CSRF-Token": config.csrfToken },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        return { status: r.status, body: b, retryAfter: r.headers.get("Retry-After") };
      });
    });
  }

  function topic(card) { return ((card.source || {}).topic || {}).code; }

  /* Card text is short markdown: paragraphs and lists are kept, tables left out. */
  function addText(parent, markdown) {
    (markdown || "").split(/\n\s*\n/).forEach(function (block) {
      var lines = block.split("\n").filter(function (l) { return l.trim() && l.trim()[0] !== "|"; });
      if (!lines.length) { return; }
      var clean = function (l) { return l.replace(/^\s*(?:[-*]|#+)\s+/, "").replace(/[*_`]/g, ""); };
      var list = lines.every(function (l) { return /^\s*[-*]\s+/.test(l); });
      var el = document.createElement(list ? "ul" : "p");
      lines.forEach(function (l, i) {
        if (list) {
          var li = document.createElement("li");
          li.textContent = clean(l);
          el.appendChild(li);
        } else {
          el.appendChild(document.createTextNode((i ? " " : "") + clean(l)));
        }
      });
      parent.appendChild(el);
    });
  }

  function cardElement(card) {
    var el = document.createElement("article");
    el.className = "card card-" + card.indicator;
    el.setAttribute("data-topic", topic(card) || "");
    var h = document.createElement("h3");
    h.textContent = card.summary;
    el.appendChild(h);
    addText(el, card.detail);
    return el;
  }

  function fill(container, cards) {
    container.textContent = "";
    cards.forEach(function (card) { container.appendChild(cardElement(card)); });
  }

  function disposition(card) {
    var provenance = (card.extension || {})["dev.backpain-cds.provenance"] || {};
    return provenance.disposition || provenance.urgency;
  }

  /* A red flag: the full-width message, "emergency" unless every critical card says the
   * answers call for a same-day visit (a card without that word counts as an emergency). */
  function showUrgent(cards) {
    var urgent = cards.filter(function (c) { return c.indicator === "critical"; });
    var today = urgent.length > 0 && urgent.every(function (c) { return disposition(c) === "same-day"; });
    fill($("urgent-cards"), urgent);
    $("urgent-emergency").hidden = !urgent.length || today;
    $("urgent-today").hidden = !today;
    $("urgent").hidden = $("urgent-why").hidden = urgent.length === 0;
  }

  /* In progress: red flags found so far; questions not reached yet are not "missing"
   * (the screen's one quiet "not finished" line becomes the page's progress line). */
  function showLive(cards) {
    showUrgent(cards);
    cards.forEach(function (c) {
      if (c.indicator === "info" && topic(c) === "screen-incomplete") {
        $("progress").textContent = c.summary;
      }
    });
    var warnings = cards.filter(function (c) {
      return c.indicator === "warning" && topic(c) !== "screen-incomplete";
    });
    fill($("so-far-cards"), warnings);
    $("so-far").hidden = warnings.length === 0;
  }

  function screenNow() {
    var qr = response("in-progress");
    var items = JSON.stringify(qr.item || []);
    if (items === lastItems) { return; }
    if (finished) { reopen(); }
    lastItems = items;
    var mine = ++sent;
    post(config.screenUrl, qr).then(function (res) {
      if (finished || mine < shown) { return; }
      shown = mine;
      if (res.status === 200) {
        showLive(res.body.cards || []);
      } else if (res.status === 429) {
        lastItems = "";
        setTimeout(schedule, 1000 * (parseInt(res.retryAfter, 10) || 5));
      }
    }).catch(function () { lastItems = ""; });
  }

  function schedule() {
    setTimeout(syncRadios, 0);
    clearTimeout(timer);
    timer = setTimeout(screenNow, DEBOUNCE_MS);
  }

  function reopen() {
    finished = false;
    $("result").hidden = true;
    $("summary").hidden = true;
    $("progress").textContent = "You changed an answer. Finish the form again to update your result.";
  }

  function problems(messages) {
    var list = $("problem-list");
    list.textContent = "";
    messages.forEach(function (m) {
      var li = document.createElement("li");
      li.textContent = m;
      list.appendChild(li);
    });
    $("problems").hidden = messages.length === 0;
    if (messages.length) { $("problems").focus(); }
  }

  function outcomeMessages(body) {
    return ((body && body.issue) || []).map(function (i) { return i.diagnostics; });
  }

  function summarise(qr) {
    var dl = $("summary-list");
    dl.textContent = "";
    var add = function (term, value) {
      var dt = document.createElement("dt"); dt.textContent = term; dl.appendChild(dt);
      var dd = document.createElement("dd"); dd.textContent = value; dl.appendChild(dd);
    };
    add("Name", (qr.subject || {}).display || "");
    (function walk(items) {
      (items || []).forEach(function (item) {
        var answers = (item.answer || []).map(function (a) {
          if (a.valueCoding) { return a.valueCoding.display || a.valueCoding.code; }
          var key = Object.keys(a).filter(function (k) { return k.indexOf("value") === 0; })[0];
          return key ? String(a[key]) : "";
        });
        if (answers.length) { add(item.text || item.linkId, answers.join(", ")); }
        walk(item.item);
      });
    })(qr.item);
    $("summary").hidden = false;
  }

  function showResult(cards, qr) {
    showUrgent(cards);
    $("so-far").hidden = true;
    fill($("result-cards"), cards.filter(function (c) { return c.indicator !== "critical"; }));
    summarise(qr);
    $("result").hidden = false;
    $("progress").textContent = "Your answers have been checked.";
    $("result").focus();
  }

  function deliver(qr) {
    var status = $("delivery");
    if (!config.submitUrl) {
      status.textContent = "This page does not send your answers anywhere. Print or download " +
        "them and give them to the clinic.";
      return;
    }
    status.textContent = "Sending your answers to the clinic…";
    post(config.submitUrl, qr).then(function (res) {
      if (res.status === 201) {
        status.textContent = "Your answers have been sent to the clinic.";
      } else {
        status.textContent = "We could not send your answers to the clinic. They are not lost: " +
          "print or download them below and give them to the clinic.";
      }
    }).catch(function () {
      status.textContent = "We could not send your answers to the clinic (no connection). " +
        "Print or download them below and give them to the clinic.";
    });
  }

  function finish() {
    var messages = (LForms.Util.checkValidity(formEl) || []).slice();
    if (!$("patient-name").value.trim()) { messages.push("Your full name: please fill this in."); }
    if (!$("patient-birthdate").value) { messages.push("Date of birth: please fill this in."); }
    problems(messages);
    if (messages.length) { return; }
    clearTimeout(timer);
    finished = true;
    var qr = response("completed");
    lastResponse = qr;
    lastItems = JSON.stringify(qr.item || []);
    post(config.screenUrl, qr).then(function (res) {
      if (res.status !== 200) {
        finished = false;
        problems(outcomeMessages(res.body).concat(res.status === 422 ? [] :
          ["We could not check your answers just now. Please try again. If you feel very " +
           "unwell, " + config.emergencyCall + "."]));
        return;
      }
      showResult(res.body.cards || [], qr);
      deliver(qr);
    }).catch(function () {
      finished = false;
      problems(["We could not reach the service. Check your connection and try again. If you " +
        "feel very unwell, " + config.emergencyCall + "."]);
    });
  }

  function download() {
    var blob = new Blob([JSON.stringify(lastResponse, null, 2)], { type: "application/fhir+json" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "back-pain-intake.json";
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  radioButtons(config.questionnaire.item);
  LForms.Util.addFormToPage(config.questionnaire, formEl, { fhirVersion: "R4" }).then(function () {
    ["change", "input", "keyup", "click"].forEach(function (type) {
      formEl.addEventListener(type, schedule, true);  // capture: LHC-Forms stops some events
    });
    document.body.setAttribute("data-form-ready", "true");
  }).catch(function () {
    problems(["The form could not be shown. Please reload the page."]);
  });
  $("send").addEventListener("click", finish);
  $("print").addEventListener("click", function () { window.print(); });
  $("download").addEventListener("click", download);
})();
