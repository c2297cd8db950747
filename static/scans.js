// "Hochladen und abgleichen": sends the files with a progress bar, then follows the server's
// reading of the pages until the result page is ready. Without JavaScript the form posts as is.
(function () {
  var form = document.getElementById("scan-form");
  if (!form || !window.FormData) { return; }
  var status = document.getElementById("scan-progress");
  var bar = document.getElementById("scan-bar");
  var id = form.elements.upload.value;
  form.addEventListener("submit", function (e) {
    if (!form.elements.files.files.length) { return; }
    e.preventDefault();
    var button = form.querySelector("button");
    button.disabled = true;
    bar.hidden = false;
    var timer = null;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.onprogress = function (ev) {
      if (ev.lengthComputable) {
        bar.value = Math.round(100 * ev.loaded / ev.total);
        status.textContent = "Hochladen: " + bar.value + " %";
      }
    };
    xhr.upload.onload = function () {
      bar.removeAttribute("value");
      status.textContent = "Seiten werden ausgewertet …";
      timer = setInterval(function () {
        fetch("/kasse/scans/" + id + "/fortschritt", { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (p) {
            if (p) { status.textContent = p.pages + " Seite" + (p.pages === 1 ? "" : "n") + " ausgewertet …"; }
          })
          .catch(function () {});
      }, 1000);
    };
    xhr.onload = function () {
      if (timer) { clearInterval(timer); }
      if (xhr.status >= 200 && xhr.status < 300 && xhr.responseURL) {
        window.location = xhr.responseURL;
        return;
      }
      button.disabled = false;
      bar.hidden = true;
      status.className = "alert";
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var msg = doc.querySelector(".alert");
      status.textContent = "Nicht hochgeladen: " + (msg ? msg.textContent : "HTTP " + xhr.status);
    };
    xhr.onerror = function () {
      if (timer) { clearInterval(timer); }
      button.disabled = false;
      status.className = "alert";
      status.textContent = "Verbindung abgebrochen – bitte erneut hochladen.";
    };
    xhr.send(new FormData(form));
  });
})();
