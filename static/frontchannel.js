// OpenID Connect Front-Channel Logout: the sign-out page loads each application's logout
// page in a hidden iframe; once they have all loaded (or after a few seconds, whatever
// they do), go on to where the sign-out leads, if anywhere. Each frame is given its
// address here, after its load listener, so none can load before it is counted. People
// without JavaScript get the frames from the page's <noscript> and the visible Continue
// link instead.
"use strict";
(function () {
  var next = document.getElementById("continue");
  var follow = next && next.hasAttribute("data-after-frames");
  var frames = document.querySelectorAll("iframe.frontchannel[data-src]");
  var waiting = frames.length;
  var gone = false;
  function go() {
    if (follow && !gone) {
      gone = true;
      window.location.assign(next.href);
    }
  }
  function loaded() {
    waiting -= 1;
    if (waiting <= 0) {
      go();
    }
  }
  for (var i = 0; i < frames.length; i++) {
    frames[i].addEventListener("load", loaded);
    frames[i].src = frames[i].getAttribute("data-src");
  }
  if (waiting === 0) {
    go();
  }
  window.setTimeout(go, 5000);
})();
