// "Zu signieren": select all, and tell the doctor to enter the PIN while the Konnektor signs.
(function () {
  var all = document.getElementById("all");
  var boxes = document.querySelectorAll('input[name="doc"]');
  if (all) {
    all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
    });
  }
  var form = document.getElementById("sign-form");
  if (form) {
    form.addEventListener("submit", function () {
      document.getElementById("sign-wait").hidden = false;
      document.getElementById("sign-button").disabled = true;
    });
  }
})();
