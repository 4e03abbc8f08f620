"""What the support bot talks about: help-center articles, customer questions, tickets and the answers a good
(or a broken) release gives. Written as a support team would write them; nothing here knows how any scorer of
the project computes its score."""

from __future__ import annotations

# help-center articles: id -> (title, body). The kb_answer route retrieves them and answers from them.
ARTICLES: dict[str, tuple[str, str]] = {
    "hc-101": ("Resetting your password",
               "To reset your password, open the sign-in page and choose 'Forgot password'. We email a reset link "
               "that stays valid for 30 minutes. If the email does not arrive, check your spam folder or ask us to "
               "resend it."),
    "hc-102": ("Two-step verification",
               "Two-step verification adds a one-time code from an authenticator app to every sign-in. You can turn "
               "it on under Settings > Security. Recovery codes are shown once; store them somewhere safe."),
    "hc-203": ("Refund policy",
               "Orders can be refunded within 14 days of delivery when the item is unused and in its original box. "
               "Refunds go back to the original payment method and usually appear within 5 business days."),
    "hc-204": ("Returning an item",
               "Start a return from Orders > Return item. Print the prepaid label, pack the item and drop it at any "
               "parcel point within 7 days. You will get an email once the warehouse receives it."),
    "hc-305": ("Shipping times",
               "Standard shipping takes 3 to 5 business days; express shipping arrives the next business day when "
               "ordered before 2 pm. Tracking links are emailed as soon as the parcel leaves the warehouse."),
    "hc-306": ("Changing a delivery address",
               "You can change the delivery address until the order is packed. Open the order, choose 'Edit "
               "address' and confirm. After packing, contact the carrier with your tracking number."),
    "hc-410": ("Updating billing details",
               "Card details are updated under Billing > Payment methods. The new card is used from the next "
               "invoice; an open invoice can be paid again with the new card from the same page."),
    "hc-411": ("Understanding your invoice",
               "Each invoice lists the plan, the number of seats and any prorated charges for seats added during the "
               "month. Taxes are shown per line. Invoices are available as PDF under Billing > History."),
    "hc-512": ("Cancelling a subscription",
               "Cancel under Billing > Plan > Cancel subscription. The plan stays active until the end of the paid "
               "period and no further charge is taken. Your data is kept for 60 days after cancellation."),
    "hc-513": ("Pausing a subscription",
               "A subscription can be paused for up to 3 months once a year. While paused you are not charged and "
               "your workspace is read-only."),
    "hc-620": ("Exporting your data",
               "Workspace owners can export all data as CSV from Settings > Data > Export. Large exports are "
               "prepared in the background and a download link is emailed when ready."),
    "hc-621": ("Deleting your account",
               "Account deletion is permanent. Owners can delete the workspace under Settings > Danger zone after "
               "confirming with their password. Deletion completes within 24 hours."),
}

# questions customers ask, each with the article that answers it
QUESTIONS: list[tuple[str, str]] = [
    ("How do I reset my password? The reset email never came.", "hc-101"),
    ("I forgot my password, how long is the reset link valid?", "hc-101"),
    ("How can I turn on two-step verification?", "hc-102"),
    ("I lost my authenticator phone, what about recovery codes?", "hc-102"),
    ("Can I get a refund for headphones I received last week?", "hc-203"),
    ("How long does a refund take to show on my card?", "hc-203"),
    ("How do I send back a jacket that does not fit?", "hc-204"),
    ("Where do I get a return label?", "hc-204"),
    ("When will my standard delivery arrive?", "hc-305"),
    ("If I order express before noon, when does it come?", "hc-305"),
    ("I moved, can I change the address on my order?", "hc-306"),
    ("The parcel is already packed, can I still change the address?", "hc-306"),
    ("How do I replace my expired credit card?", "hc-410"),
    ("Why is there a prorated charge on my invoice?", "hc-411"),
    ("Where can I download my invoices as PDF?", "hc-411"),
    ("How do I cancel my subscription?", "hc-512"),
    ("Will I be charged again after cancelling?", "hc-512"),
    ("Can I pause my plan over the summer?", "hc-513"),
    ("How do I export all our workspace data?", "hc-620"),
    ("Please tell me how to delete my account for good.", "hc-621"),
]

# what a good release answers: grounded in the article
GOOD_ANSWERS: dict[str, str] = {
    "hc-101": "Choose 'Forgot password' on the sign-in page; we email a reset link valid for 30 minutes. If it does "
              "not arrive, check your spam folder or ask us to resend it.",
    "hc-102": "Turn on two-step verification under Settings > Security. Keep the recovery codes shown at setup "
              "somewhere safe: they are displayed only once.",
    "hc-203": "Unused items in their original box can be refunded within 14 days of delivery. The refund goes back "
              "to your original payment method, usually within 5 business days.",
    "hc-204": "Start the return from Orders > Return item, print the prepaid label and drop the parcel at a parcel "
              "point within 7 days. We email you once the warehouse receives it.",
    "hc-305": "Standard shipping takes 3 to 5 business days. Express orders placed before 2 pm arrive the next "
              "business day, and you get a tracking link by email.",
    "hc-306": "Until the order is packed you can open it and choose 'Edit address'. After packing, contact the "
              "carrier with your tracking number.",
    "hc-410": "Update the card under Billing > Payment methods; it is used from the next invoice, and an open "
              "invoice can be paid again with it from the same page.",
    "hc-411": "Prorated charges appear when seats are added during the month. Every invoice is available as a PDF "
              "under Billing > History.",
    "hc-512": "Cancel under Billing > Plan > Cancel subscription. Your plan stays active until the end of the paid "
              "period, no further charge is taken, and data is kept for 60 days.",
    "hc-513": "Yes: a subscription can be paused for up to 3 months once a year. You are not charged while paused "
              "and the workspace is read-only.",
    "hc-620": "Workspace owners can export everything as CSV from Settings > Data > Export; a download link is "
              "emailed when the export is ready.",
    "hc-621": "Owners can delete the workspace under Settings > Danger zone after confirming their password. It is "
              "permanent and completes within 24 hours.",
}

# a release that invents policy: confident, specific, and not what the articles say
HALLUCINATED_ANSWERS: list[str] = [
    "Refunds are available for 180 days on any item, opened or not, and we add a 25 dollar loyalty credit to every "
    "refund automatically.",
    "Password reset links never expire, and our agents can also read your current password to you over the phone.",
    "Express delivery is free on Sundays and always arrives within 2 hours in every country we ship to.",
    "Cancelling gives you a prorated cash refund for the remaining months plus a free year of the premium plan.",
    "Deleted accounts can be restored at any time within 5 years by emailing the legal department.",
    "Two-step verification is handled by SMS only and it is switched on for every account by default since 2019.",
]

# a prompt release that forgets the task: polite filler instead of an answer
REGRESSED_ANSWERS: list[str] = [
    "Thank you for contacting us! We truly value you as a customer. Is there anything else I can help you with "
    "today?",
    "Thanks for your message. Our team is always happy to help. Have a wonderful day!",
    "We appreciate your patience. Please feel free to reach out again if you have any other questions.",
    "Great question! Customer happiness is our top priority and we are here for you.",
]

# unrelated pages a broken index returns (wrong retrieval): real pages of the site, wrong for the question
OFF_TOPIC_PAGES: dict[str, tuple[str, str]] = {
    "blog-17": ("Our summer team offsite", "Photos and stories from the team's week in the mountains, with a "
                "recipe for the camp-fire chili everyone asked about."),
    "blog-22": ("Release notes 4.2", "Dark mode for the mobile app, faster search in the admin console and a new "
                "set of keyboard shortcuts."),
    "jobs-03": ("We are hiring", "Open positions in engineering, design and customer success; remote friendly."),
    "legal-9": ("Cookie notice", "Which cookies the marketing site sets and how to change your preferences."),
}

# triage tickets: (text, order id or None, priority the agent should set)
TICKETS: list[tuple[str, str | None, str]] = [
    ("My order arrived broken, the screen is cracked. I want a replacement.", "A-88213", "high"),
    ("Package shows delivered but I never got it.", "A-77120", "high"),
    ("Can you check if my refund for the blue sneakers went through?", "A-65002", "normal"),
    ("I was charged twice for the same order this morning.", "A-90911", "urgent"),
    ("The size guide on the website seems wrong for kids shoes.", None, "low"),
    ("Where is my order? It has been ten days.", "A-71777", "normal"),
    ("Your app logs me out every five minutes.", None, "normal"),
    ("I want to change the gift message on my order before it ships.", "A-80404", "normal"),
]
TRIAGE_DECISIONS = {
    "urgent": "Escalated to billing on-call: duplicate charge confirmed, refund of the second charge started.",
    "high": "Priority set to high and routed to the logistics desk with the order history attached.",
    "normal": "Priority normal; routed to the order support queue with a summary of the order status.",
    "low": "Priority low; forwarded to the web content team as feedback.",
}

# past tickets the triage retriever finds, with their resolutions
PAST_TICKETS: dict[str, str] = {
    "T-1001": "Broken item on delivery: replacement shipped express after photo evidence.",
    "T-1002": "Parcel marked delivered but missing: carrier investigation opened, reshipped after 48 h.",
    "T-1003": "Refund status question: refund confirmed, bank delay explained.",
    "T-1004": "Double charge: second authorization voided by billing.",
    "T-1005": "Order late: carrier delay, tracking shared and shipping fee refunded.",
    "T-1006": "App session expires: fixed by updating the app to the latest version.",
    "T-1007": "Gift message change: updated in the warehouse system before packing.",
    "T-1008": "Size guide feedback: forwarded to content team.",
}

# reply drafts: the customer's message and the agent's notes; the draft the model writes
REPLY_REQUESTS: list[tuple[str, str]] = [
    ("Customer asks why the refund is not on the card yet.", "Refund issued 3 days ago; 5 business days normal."),
    ("Customer wants express shipping on an existing order.", "Order not packed yet; upgrade possible for a fee."),
    ("Customer complains about a rude courier.", "Apologise; complaint filed with the carrier."),
    ("Customer asks for an invoice with the company VAT number.", "Invoice re-issued with VAT number attached."),
    ("Customer cannot log in after changing email.", "Email change confirmed; sent a fresh sign-in link."),
    ("Customer asks to cancel before renewal tomorrow.", "Cancelled; active until end of period, no charge."),
]
REPLY_DRAFT = ("Hi {name},\n\nThanks for getting in touch. {notes} If anything else comes up, just reply to this "
               "email.\n\nBest regards,\nThe support team")
NAMES = ["Ana", "Bilal", "Chen", "Dara", "Emeka", "Freya", "Goran", "Hana", "Ines", "Jonas", "Kemal", "Lea"]

# the system prompts of the prompt versions (a longer one is what a cost overrun looks like)
SYSTEM_PROMPTS = {
    "kb-answer-v7": "You answer customer questions using only the help-center articles provided. Be brief and "
                    "quote the steps exactly.",
    "kb-answer-v8": "You are a friendly assistant.",
    "triage-v3": "You triage support tickets: look up the order, check similar past tickets, set a priority.",
    "reply-v3": "Draft a short, polite reply to the customer from the agent's notes.",
    "reply-v4": "Draft a short, polite reply to the customer from the agent's notes. Follow the full tone guide, "
                "the legal disclaimers and the 40 worked examples below before writing.",
}
