// OpenID Connect Front-Channel Logout: the sign-out page loads each application's logout
// page in a hidden iframe; once they have all loaded (or after a few seconds, whatever
// they do), go on to where the sign-out leads, if anywhere. People without JavaScript
// use the visible Continue link instead.
"use strict";
(function () {
  var next = document.getElementById("continue");
  if (!next || !next.hasAttribute("data-after-frames")) {
    return;
  }
  var frames = document.querySelectorAll("iframe.frontchannel");
  var waiting = frames.length;
  var gone = false;
  function go() {
    if (!gone) {
      gone = true;
      window.location.assign(next.href);
    }
  }
  for (var i = 0; i < frames.length; i++) {
    frames[i].addEventListener("load", function () {
      waiting -= 1;
      if (waiting <= 0) {
        go();
      }
    });
  }
  if (waiting === 0) {
    go();
  }
  window.setTimeout(go, 5000);
})();
