// "eAU-Datei übernehmen": sends the chosen file as it is (a .p7s must arrive byte for byte).
(function () {
  var form = document.getElementById("import-form");
  var result = document.getElementById("import-result");
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var file = document.getElementById("file").files[0];
    if (!file) { return; }
    var signed = /\.p7s$/i.test(file.name) || file.type === "application/pkcs7-mime";
    result.className = "";
    result.textContent = "Wird geprüft …";
    fetch("/certificates/import", {
      method: "POST",
      headers: {
        "Content-Type": signed ? "application/pkcs7-mime" : "application/fhir+xml",
        "X-CSRF-Token": form.dataset.csrf
      },
      body: file
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; },
        function () { return { ok: false, body: { issues: [{ message: "Antwort des Servers unlesbar (HTTP " + r.status + ")" }] } }; });
    }).then(function (answer) {
      if (answer.ok && answer.body.location) {
        window.location = answer.body.location;
        return;
      }
      result.className = "alert";
      result.textContent = "";
      var p = document.createElement("p");
      p.textContent = "Nicht übernommen:";
      var ul = document.createElement("ul");
      (answer.body.issues || []).forEach(function (i) {
        var li = document.createElement("li");
        li.textContent = i.message + (i.location ? " (" + i.location + ")" : "");
        ul.appendChild(li);
      });
      result.appendChild(p);
      result.appendChild(ul);
    }).catch(function () {
      result.className = "alert";
      result.textContent = "Server nicht erreichbar – bitte erneut versuchen.";
    });
  });
})();
