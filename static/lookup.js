// "Neue AU": suggestions while typing. The patient's name, birth date or Versicherten-Nr.
// offers the practice's earlier patients; the insurer's name or IK offers insurers from the
// Kostenträgerstammdatei. A click, or Enter on the field, takes the first (or chosen)
// suggestion and fills the whole block. Queries go by POST with the form's CSRF token, so no
// name, birth date or KVNR ever appears in a URL.
(function () {
  var form = document.querySelector("form.au");
  if (!form) { return; }
  var csrf = form.querySelector("input[name=csrf]").value;

  function field(name) { return document.getElementById(name); }

  function ask(path, q) {
    var body = new URLSearchParams();
    body.set("csrf", csrf);
    body.set("q", q);
    return fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body.toString(),
      credentials: "same-origin"
    }).then(function (r) { return r.ok ? r.json() : {}; }, function () { return {}; });
  }

  // One suggestion list under a fieldset's legend.
  function suggestions(id, label, fill) {
    var box = document.createElement("div");
    box.className = "suggestions";
    box.id = id;
    box.setAttribute("role", "listbox");
    box.setAttribute("aria-label", label);
    box.hidden = true;
    var items = [];
    return {
      box: box,
      show: function (list, text) {
        items = list;
        box.textContent = "";
        list.forEach(function (item) {
          var b = document.createElement("button");
          b.type = "button";
          b.setAttribute("role", "option");
          b.textContent = text(item);
          b.addEventListener("click", function () { fill(item); box.hidden = true; });
          box.appendChild(b);
        });
        box.hidden = list.length === 0;
      },
      // Enter on a field with suggestions open: take the first one instead of submitting.
      enter: function (e) {
        if (e.key === "Enter" && !box.hidden && items.length > 0) {
          e.preventDefault();
          fill(items[0]);
          box.hidden = true;
        } else if (e.key === "Escape") {
          box.hidden = true;
        }
      },
      hide: function () { box.hidden = true; }
    };
  }

  function watch(names, list, path, key, minimum, text) {
    var timer = null;
    var latest = 0;
    names.forEach(function (name) {
      var input = field(name);
      if (!input) { return; }
      input.setAttribute("autocomplete", "off");
      input.addEventListener("keydown", list.enter);
      input.addEventListener("input", function () {
        clearTimeout(timer);
        var q = input.value.trim();
        if (q.length < minimum) { list.hide(); return; }
        timer = setTimeout(function () {
          var mine = ++latest;
          ask(path, q).then(function (answer) {
            if (mine === latest) { list.show(answer[key] || [], text); }
          });
        }, 150);
      });
    });
  }

  function set(name, value) {
    var input = field(name);
    if (input) { input.value = value == null ? "" : value; }
  }

  // --- patients -------------------------------------------------------------------------
  var patientLegend = field("patient.last_name") && field("patient.last_name").closest("fieldset");
  if (patientLegend) {
    var patients = suggestions("patient-suggestions", "Frühere Patientinnen und Patienten", function (hit) {
      ["last_name", "first_name", "title", "name_addition", "name_prefix", "birth_date", "kvnr",
       "street", "house_number", "post_box", "postal_code", "city"]
        .forEach(function (k) { set("patient." + k, hit.patient[k]); });
      // Filled name parts or a Postfach are shown, not left in a closed section.
      document.querySelectorAll("details.more").forEach(function (d) {
        if (Array.prototype.some.call(d.querySelectorAll("input"), function (i) { return i.value; })) {
          d.open = true;
        }
      });
      ["name", "ik", "insured_type", "special_group", "dmp", "wop", "valid_until"]
        .forEach(function (k) { set("insurer." + k, hit.insurer[k]); });
      checkIk();
    });
    patientLegend.querySelector("legend").after(patients.box);
    watch(["patient.last_name", "patient.birth_date", "patient.kvnr"], patients,
      "/certificates/lookup/patients", "patients", 2, function (hit) { return hit.label; });
  }

  // --- insurers -------------------------------------------------------------------------
  // The page renders the warning's place (with the server's warning after a failed save).
  var warning = field("insurer.ik-warning");
  var ikField = field("insurer.ik");

  function checkIk() {
    if (!warning) { return; }
    var ik = ikField ? ikField.value.trim() : "";
    if (!/^\d{9}$/.test(ik)) { warning.hidden = true; return; }
    ask("/certificates/lookup/insurers", ik).then(function (answer) {
      var hit = (answer.insurers || []).filter(function (h) { return h.ik === ik; })[0];
      warning.textContent = hit && hit.warning ? hit.warning : "";
      warning.hidden = !(hit && hit.warning);
    });
  }

  var insurerLegend = field("insurer.name") && field("insurer.name").closest("fieldset");
  if (insurerLegend) {
    var insurers = suggestions("insurer-suggestions", "Krankenkassen", function (hit) {
      set("insurer.name", hit.name);
      set("insurer.ik", hit.ik);
      checkIk();
    });
    insurerLegend.querySelector("legend").after(insurers.box);
    watch(["insurer.name", "insurer.ik"], insurers, "/certificates/lookup/insurers", "insurers", 2,
      function (hit) { return hit.name + " – IK " + hit.ik + (hit.warning ? " (abgelaufen)" : ""); });
    ikField.addEventListener("change", checkIk);
    checkIk();
  }
})();
