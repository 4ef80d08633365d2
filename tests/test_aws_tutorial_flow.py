"""The AWS tutorial's flow, written as client code for the real MTurk is written, run unchanged
against the local target: get the balance, create HITs with an HTMLQuestion, poll for results,
approve them, and add assignments until two workers agree.

Only the endpoint differs from what the tutorial points at (the sandbox URL); the client is a plain
boto3 client with its own (made-up) keys, signing for us-east-1 as it must.
"""

from __future__ import annotations

import time
from collections import Counter

import boto3
import pytest
import xmltodict

from annotate.marketplace import MarketplaceServer
from annotate.marketplace.crowd import SimulatedCrowd

QUESTION_XML = """<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd">
  <HTMLContent><![CDATA[
<!DOCTYPE html>
<html>
 <head>
  <meta http-equiv='Content-Type' content='text/html; charset=UTF-8'/>
  <script type='text/javascript' src='https://s3.amazonaws.com/mturk-public/externalHIT_v1.js'></script>
 </head>
 <body>
  <form name='mturk_form' method='post' id='mturk_form' action='https://workersandbox.mturk.com/mturk/externalSubmit'>
  <input type='hidden' value='' name='assignmentId' id='assignmentId'/>
  <h1>What is the emotion of this tweet?</h1>
  <p>{tweet}</p>
  <p><input type='radio' name='emotion' value='happy'> happy
     <input type='radio' name='emotion' value='angry'> angry
     <input type='radio' name='emotion' value='scared'> scared
     <input type='radio' name='emotion' value='upset'> upset</p>
  <p><input type='submit' id='submitButton' value='Submit' /></p></form>
  <script language='Javascript'>turkSetAssignmentID();</script>
 </body>
</html>
]]>
  </HTMLContent>
  <FrameHeight>450</FrameHeight>
</HTMLQuestion>"""

TWEETS = {"t1": ("What a wonderful morning, coffee and sunshine!", "happy"),
          "t2": ("Stuck on hold for two hours. Again.", "angry"),
          "t3": ("Heard a noise downstairs at 3am...", "scared")}


def tutorial(endpoint_url: str) -> dict[str, str]:
    """The tutorial's code, as a requester would run it (only `endpoint_url` is ours)."""
    mturk = boto3.client("mturk", aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                         aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                         region_name="us-east-1", endpoint_url=endpoint_url)
    print("I have $" + mturk.get_account_balance()["AvailableBalance"] + " in my account")

    hits = {}
    for key, (tweet, _) in TWEETS.items():
        new_hit = mturk.create_hit(
            Title="What is the emotion of this tweet?",
            Description="Read a tweet and choose the emotion of the person who wrote it",
            Keywords="text, quick, labeling",
            Reward="0.15",
            MaxAssignments=2,
            LifetimeInSeconds=172800,
            AssignmentDurationInSeconds=600,
            AutoApprovalDelayInSeconds=14400,
            RequesterAnnotation=key,
            Question=QUESTION_XML.replace("{tweet}", tweet),
        )
        print("A new HIT has been created. You can preview it here:")
        print("https://workersandbox.mturk.com/mturk/preview?groupId=" + new_hit["HIT"]["HITGroupId"])
        hits[key] = new_hit["HIT"]["HITId"]

    answers: dict[str, list[str]] = {key: [] for key in hits}
    labels: dict[str, str] = {}
    deadline = time.time() + 120
    while len(labels) < len(hits):
        assert time.time() < deadline, f"no agreement yet: {answers}"
        for key, hit_id in hits.items():
            if key in labels:
                continue
            worker_results = mturk.list_assignments_for_hit(HITId=hit_id, AssignmentStatuses=["Submitted"])
            if worker_results["NumResults"] > 0:
                for assignment in worker_results["Assignments"]:
                    xml_doc = xmltodict.parse(assignment["Answer"])
                    answer = xml_doc["QuestionFormAnswers"]["Answer"]
                    fields = answer if isinstance(answer, list) else [answer]
                    for field in fields:
                        if field["QuestionIdentifier"] == "emotion":
                            answers[key].append(field["FreeText"])
                    mturk.approve_assignment(AssignmentId=assignment["AssignmentId"],
                                             RequesterFeedback="Thank you!")
            hit = mturk.get_hit(HITId=hit_id)["HIT"]
            top = Counter(answers[key]).most_common(1)
            if top and top[0][1] >= 2:
                labels[key] = top[0][0]
            elif hit["NumberOfAssignmentsAvailable"] == 0 and hit["NumberOfAssignmentsPending"] == 0 \
                    and len(answers[key]) >= hit["MaxAssignments"]:
                # Every assignment is in and no two agree: ask one more worker.
                mturk.create_additional_assignments_for_hit(HITId=hit_id, NumberOfAdditionalAssignments=1)
        time.sleep(0.2)
    print("I have $" + mturk.get_account_balance()["AvailableBalance"] + " left")
    return labels


@pytest.mark.parametrize("accuracy", [(0.97, 0.99), (0.5, 0.6)])
def test_the_tutorial_runs_unchanged_against_the_local_target(tmp_path, capsys, accuracy):
    gold = {key: emotion for key, (_, emotion) in TWEETS.items()}
    # The local target's marketplace (production-like money, as annotate embeds it).
    with MarketplaceServer(tmp_path / "marketplace.db", mode="production", faults="") as srv:
        crowd = SimulatedCrowd(srv.url, gold, workers=10, accuracy=accuracy, spammer_share=0.0, seed=3).start()
        try:
            labels = tutorial(srv.url)
        finally:
            crowd.stop()
        assert not crowd.returned
        mturk = boto3.client("mturk", region_name="us-east-1", endpoint_url=srv.url,
                             aws_access_key_id="x", aws_secret_access_key="x")
        submitted = sum(len(mturk.list_assignments_for_hit(HITId=h["HITId"])["Assignments"])
                        for h in mturk.list_hits()["HITs"])
    out = capsys.readouterr().out
    assert "I have $10000.00 in my account" in out and out.count("groupId=3") == 3
    assert set(labels) == set(TWEETS)
    if accuracy[0] > 0.9:
        assert labels == gold
    else:
        assert submitted > 2 * len(TWEETS), "a poor crowd should have needed more assignments"
