// The catalogue filters work as a plain GET form; with JavaScript a choice applies at once.
"use strict";
(function () {
  const form = document.getElementById("filters");
  if (!form) return;
  form.querySelectorAll(".js-hide").forEach((button) => { button.hidden = true; });
  form.querySelectorAll("select").forEach((select) => {
    select.addEventListener("change", () => {
      // Drop empty fields so the URL stays short: /?app=weave, not /?app=weave&technique=
      const params = new URLSearchParams();
      new FormData(form).forEach((value, key) => { if (value) params.append(key, value); });
      const query = params.toString();
      window.location.search = query ? "?" + query : "";
      if (!query) window.location.href = form.action;
    });
  });
})();
